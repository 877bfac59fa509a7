/*
** The `resnet` program: dispatches to a subcommand.
*/
#include "cli/commands.h"
#include "cli/args.h"
#include "dist/dist.h"
#include "cli/config.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} command;

static const command commands[] = {
    {"train", rn_cmd_train, "train a network on a dataset (fastai-style one-cycle, checkpoints, resume)"},
    {"lr-find", rn_cmd_lr_find, "sweep the learning rate and suggest one (fastai's lr_find)"},
    {"eval", rn_cmd_eval, "loss, accuracy, per-class accuracy and confusion of a model on a dataset"},
    {"predict", rn_cmd_predict, "classify image files with a model"},
    {"summary", rn_cmd_summary, "print the layers, parameter and MAC counts of an architecture"},
    {"init", rn_cmd_init, "write a freshly initialized model file"},
    {"forward", rn_cmd_forward, "run a model on a tensor file and write the logits"},
    {"export", rn_cmd_export, "write a model as ONNX (opset 13) for other runtimes"},
    {"bench", rn_cmd_bench, "time training steps or inference, and the machine's fp32 peak"},
};

/* Prints the top-level usage. */
static void usage(FILE *f) {
    fprintf(f, "usage: resnet <command> [options]\n       resnet <command> --help\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n  --version  print the version\n"
               "\nEvery command takes --config FILE: options from a JSON object or TOML key = value\n"
               "lines (keys are option names; command-line options override them).\n"
               "NO_COLOR=1 turns colour off; the progress bar is drawn only on a terminal.\n"
               "\nexit status: 0 success, 1 failure while running, 2 bad usage. See resnet(1).\n");
}

/* Finds the command and runs it with the remaining arguments. */
int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("resnet %s\nMPI: %s\n", rn_version(), rn_dist_backend());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        int n;
        char **v;
        if (rn_config_expand(argc - 1, argv + 1, &n, &v)) return 2;
        int code = commands[i].run(n, v ? v : argv + 1);
        rn_config_free(n, v);
        return code;
    }
    rn_cli_error("unknown command '%s' (see 'resnet --help')", argv[1]);
    return 2;
}
