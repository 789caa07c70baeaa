/* Fuzz the configuration file reader: arbitrary bytes as a presenced.conf must load or be refused
 * with a message, never crash; what loads must pass the same checks again key by key. The input
 * goes through a memfd so no file is written. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "presenced/app/cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-cfg", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[CFG_ERR_MAX];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    cfg c;
    cfg_init(&c);
    if (cfg_load_file(&c, path, err) == 0) {
        /* Every value that loaded reads back as text that sets the same value. */
        cfg again;
        cfg_init(&again);
        for (size_t i = 0; cfg_key_name(i); i++) {
            char value[CFG_STR_MAX + 8];
            FUZZ_CHECK(cfg_get(&c, cfg_key_name(i), value, sizeof(value)) == 0);
            FUZZ_CHECK(cfg_set(&again, cfg_key_name(i), value, err) == 0);
        }
        FUZZ_CHECK(memcmp(&c, &again, sizeof(c)) == 0);
    } else {
        FUZZ_CHECK(err[0] != 0);
    }
    close(fd);
    return 0;
}
