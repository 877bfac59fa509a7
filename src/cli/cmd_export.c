/*
** resnet export: a model file as ONNX (opset 13) for other runtimes.
*/
#include "cli/commands.h"
#include "cli/args.h"
#include "io/onnx.h"

#include <stdio.h>
#include <string.h>

/* Prints the usage of resnet export. */
static void export_help(void) {
    printf("usage: resnet export --model M.safetensors --onnx OUT.onnx [--batch N|dynamic] [--size H[xW]]\n\n"
           "Writes the model's inference network as ONNX (opset 13): input \"input\" float\n"
           "(batch, C, H, W), already normalized with the model's mean/std (carried in the\n"
           "ONNX metadata_props), output \"logits\" (batch, K). A batchnorm right after a\n"
           "convolution is folded into its weights; pre-activation batchnorms stay nodes.\n\n"
           "  --model FILE     the model to export (required)\n"
           "  --onnx FILE      where to write the ONNX model (required; written atomically)\n"
           "  --batch N        batch size of the graph (default 1); 'dynamic' for a symbolic N\n"
           "  --size H[xW]     input size (default: the model's input size)\n");
}

/* resnet export: opens the model and writes it as ONNX. */
int rn_cmd_export(int argc, char **argv) {
    const char *model = NULL, *onnx = NULL, *batch = NULL, *size = NULL;
    rn_opt opts[] = {{"model", &model, 0}, {"onnx", &onnx, 0}, {"batch", &batch, 0}, {"size", &size, 0}, {0}};
    int r = rn_args_parse("export", argc, argv, opts);
    if (r) {
        if (r > 0) export_help();
        return r > 0 ? 0 : 2;
    }
    if (!model || !onnx) {
        rn_cli_error("export: --model and --onnx are required");
        return 2;
    }
    long n = 1;
    if (batch && !strcmp(batch, "dynamic")) n = 0;
    else if (rn_args_int("batch", batch, 1, 1 << 20, &n)) return 2;
    rn_model *m;
    rn_error err;
    if (rn_model_open(model, &m, &err)) {
        rn_cli_error("%s", err.msg);
        return 1;
    }
    int h = 0, w = 0, rc = 2; /* 0: the model's input size */
    if (!rn_args_size("size", size, &h, &w)) {
        rc = rn_onnx_export(m, onnx, (int)n, h, w, &err) ? 1 : 0;
        if (rc) rn_cli_error("%s", err.msg);
        else printf("wrote %s: %s, ONNX opset 13, batch %s\n", onnx, rn_model_spec(m)->arch,
                    n ? batch ? batch : "1" : "N");
    }
    rn_model_free(m);
    return rc;
}
