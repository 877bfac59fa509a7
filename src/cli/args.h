/*
** Command-line parsing shared by the subcommands: a table of options, each
** a flag or a valued option (`--name value` or `--name=value`), and checked
** conversions that say what is allowed when a value is wrong.
*/
#ifndef RN_ARGS_H
#define RN_ARGS_H

#include "resnet.h"

typedef struct {
    const char *name;  /* without the leading dashes */
    const char **value; /* valued option: where to store the text; NULL for a flag */
    int *flag;         /* flag: set to 1 when present */
} rn_opt;

/* Parses argv[1..argc-1] against opts. Returns 1 if --help was given,
** 0 on success, -1 after printing an error. */
int rn_args_parse(const char *cmd, int argc, char **argv, const rn_opt *opts);
/* Converts an integer option, checking [lo, hi]; prints an error and
** returns -1 when invalid; leaves *out unchanged when text is NULL. */
int rn_args_int(const char *name, const char *text, long lo, long hi, long *out);
/* Same for a finite float in [lo, hi]. */
int rn_args_float(const char *name, const char *text, double lo, double hi, double *out);
/* Parses "H" or "HxW" into h and w. */
int rn_args_size(const char *name, const char *text, int *h, int *w);
/* Prints "resnet: error: ..." to stderr. */
void rn_cli_error(const char *fmt, ...);

/* The architecture options every model-making command accepts. */
typedef struct {
    const char *arch, *classes, *in_channels, *blocks, *widths, *block, *stem, *shortcut, *bn_eps, *bn_momentum;
} rn_arch_args;
#define RN_ARCH_OPTS(a)                                                                           \
    {"arch", &(a).arch, 0}, {"classes", &(a).classes, 0}, {"in-channels", &(a).in_channels, 0},   \
    {"blocks", &(a).blocks, 0}, {"widths", &(a).widths, 0}, {"block", &(a).block, 0},            \
    {"stem", &(a).stem, 0}, {"shortcut", &(a).shortcut, 0}, {"bn-eps", &(a).bn_eps, 0},                 \
    {"bn-momentum", &(a).bn_momentum, 0}
#define RN_ARCH_HELP                                                                              \
    "  --arch NAME          resnet18|34|50|101|152, resnet50-v1|101-v1|152-v1,\n"                 \
    "                       preact-resnet18|34|50|101|152, resnet20|32|44|56|110 (default resnet18)\n" \
    "  --blocks 3,4,6,3     custom network: blocks per stage (instead of --arch)\n"                \
    "  --widths 64,128,...  custom network: planes per stage\n"                                    \
    "  --block KIND         custom network: basic|bottleneck|preact-basic|preact-bottleneck\n"     \
    "  --stem KIND          custom network: imagenet|cifar (default imagenet)\n"                   \
    "  --shortcut A|B       B: 1x1 projection (default); A: strided identity, zero channels\n"     \
    "  --classes K          number of classes (default 1000; CIFAR nets 10)\n"                     \
    "  --in-channels C      input channels (default 3; 1 for grayscale)\n"                        \
    "  --bn-eps E           batchnorm epsilon (default 1e-5)\n"                                    \
    "  --bn-momentum M      running-statistics momentum, PyTorch's meaning (default 0.1)\n"
/* Builds the spec the options describe; prints an error and returns -1 if invalid. */
int rn_arch_spec(const rn_arch_args *a, rn_spec *spec);

#endif
