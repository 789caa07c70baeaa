/* fault_proxy — the fault-injection proxy (fault_proxy.h) as a program, for tests written in
 * another language.
 *
 * Usage: fault_proxy TARGET_PORT [LISTEN_PORT]
 * Forwards 127.0.0.1:LISTEN_PORT (0 or absent: a free port) to 127.0.0.1:TARGET_PORT and prints
 * "port N" once listening. Then reads one command per line on stdin and answers "ok" to each:
 *   pass | stall | hold_replies | cut | delay MS
 * End of input (or "quit") closes everything and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_proxy.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s TARGET_PORT [LISTEN_PORT]\n", argv[0]);
        return 2;
    }
    fault_proxy *fp = fault_proxy_start("127.0.0.1", atoi(argv[1]), argc > 2 ? atoi(argv[2]) : 0);
    if (!fp) {
        fprintf(stderr, "fault_proxy: cannot listen\n");
        return 1;
    }
    printf("port %d\n", fault_proxy_port(fp));
    fflush(stdout);
    char line[128];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strcmp(line, "pass") == 0)
            fault_proxy_set(fp, FAULT_PASS, 0);
        else if (strcmp(line, "stall") == 0)
            fault_proxy_set(fp, FAULT_STALL, 0);
        else if (strcmp(line, "hold_replies") == 0)
            fault_proxy_set(fp, FAULT_HOLD_REPLIES, 0);
        else if (strcmp(line, "cut") == 0)
            fault_proxy_set(fp, FAULT_CUT, 0);
        else if (strncmp(line, "delay ", 6) == 0)
            fault_proxy_set(fp, FAULT_DELAY, (uint32_t)strtoul(line + 6, NULL, 10));
        else if (strcmp(line, "quit") == 0)
            break;
        else {
            printf("error unknown command\n");
            fflush(stdout);
            continue;
        }
        printf("ok\n");
        fflush(stdout);
    }
    fault_proxy_stop(fp);
    return 0;
}
