/*
** libFuzzer target: the safetensors reader (header, offsets, tensor data)
** and, for every file it accepts, the model loader on the same bytes
** (architecture from metadata or inferred from the tensors, then every
** tensor checked and copied in): what `resnet eval --model F` does.
*/
#include <stdint.h>
#include <stdlib.h>

#include "io/safetensors.h"
#include "resnet.h"
#include "fuzz_util.h"

/* Parses one input; aborts only on a broken promise of the reader. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rn_st_file f;
    rn_error err;
    if (rn_st_parse(data, size, "fuzz.safetensors", &f, &err) != RN_OK) {
        fuzz_check_msg(err.msg, "fuzz.safetensors");
        return 0;
    }
    volatile unsigned sum = 0; /* read every tensor byte: ASan checks the ranges */
    for (int i = 0; i < f.ntensors; i++) {
        const unsigned char *p = f.tensors[i].data;
        for (size_t j = 0; j < f.tensors[i].nbytes; j++) sum += p[j];
        if (rn_st_find(&f, f.tensors[i].name) == NULL) abort();
    }
    (void)sum;
    rn_st_free(&f);
    char path[512];
    rn_model *m = NULL;
    fuzz_file("m.safetensors", data, size, path, sizeof path);
    if (rn_model_open(path, &m, &err) == RN_OK) rn_model_free(m);
    else if (!err.msg[0]) abort();
    return 0;
}
