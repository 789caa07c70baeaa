#include "presenced/app/app.h"

int main(int argc, char **argv, char **envp)
{
    return app_main(argc, argv, envp);
}
