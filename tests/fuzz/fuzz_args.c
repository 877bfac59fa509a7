/*
** libFuzzer target: the command-line parsing and checking of `resnet
** train`, `lr-find`, `eval` and `predict`, through their parse-only entries
** (nothing is opened or run). Input: a byte choosing the command, then the
** arguments separated by NUL bytes (at most 64).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

#define MAX_ARGS 64

/* Splits one input into argv and checks it; the exit code must be 0 or 2. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const cmds[4] = {"train", "lr-find", "eval", "predict"};
    if (size < 1) return 0;
    int which = data[0] % 4, argc = 1;
    char *text = malloc(size); /* size - 1 bytes of arguments plus a final NUL */
    char *argv[MAX_ARGS + 2];
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    argv[0] = (char *)cmds[which];
    for (size_t i = 0; i < size - 1 && argc <= MAX_ARGS; i++)
        if (i == 0 || text[i - 1] == 0) argv[argc++] = text + i;
    argv[argc] = NULL;
    int code = which < 2 ? rn_cmd_train_check(argc, argv, which)
               : which == 2 ? rn_cmd_eval_check(argc, argv) : rn_cmd_predict_check(argc, argv);
    free(text);
    if (code != 0 && code != 2) abort();
    return 0;
}
