/*
** The subcommands of the `resnet` program, each a main() of its own
** taking the arguments after the command name (argv[0] is the command).
** Exit codes: 0 success, 1 failure while running, 2 bad usage.
*/
#ifndef RN_COMMANDS_H
#define RN_COMMANDS_H

#include "resnet.h"

int rn_cmd_summary(int argc, char **argv);
int rn_cmd_init(int argc, char **argv);
int rn_cmd_forward(int argc, char **argv);
int rn_cmd_bench(int argc, char **argv);
int rn_cmd_train(int argc, char **argv);
int rn_cmd_lr_find(int argc, char **argv);
int rn_cmd_eval(int argc, char **argv);
int rn_cmd_predict(int argc, char **argv);
int rn_cmd_export(int argc, char **argv);

/* Parse-only entries (for tests and the fuzzer): parse and check every
** option as the command would, open no file and run nothing; return the
** exit code the command would stop with for them (0 valid or --help,
** 2 bad usage, after printing the error). lr_find selects lr-find. */
int rn_cmd_train_check(int argc, char **argv, int lr_find);
int rn_cmd_eval_check(int argc, char **argv);
int rn_cmd_predict_check(int argc, char **argv);

#endif
