/*
** libFuzzer target: the IDX reader ("idx:DIR", MNIST format, plain or
** gzip) as rn_dataset_open calls it. Input: a flags byte (bit 0: also a
** t10k half, a copy of the training files), a 2-byte big-endian length L,
** L bytes of the labels file, then the images file.
*/
#include <stdint.h>
#include <stdlib.h>

#include "data/data.h"
#include "fuzz_util.h"

/* Opens one fuzzed IDX directory and reads every sample it accepts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    size_t l = ((size_t)data[1] << 8 | data[2]) % (size - 2);
    const uint8_t *lab = data + 3, *img = data + 3 + l;
    size_t ni = size - 3 - l, skip = (size_t)-1;
    int both = data[0] & 1;
    char path[512], spec[600];
    fuzz_file("train-labels-idx1-ubyte", lab, l, path, sizeof path);
    fuzz_file("train-images-idx3-ubyte", img, ni, path, sizeof path);
    fuzz_file("t10k-labels-idx1-ubyte", lab, both ? l : skip, path, sizeof path);
    fuzz_file("t10k-images-idx3-ubyte", img, both ? ni : skip, path, sizeof path);
    snprintf(spec, sizeof spec, "idx:%s", fuzz_dir());
    rn_dataset tr, va;
    rn_error err;
    if (rn_dataset_open(spec, NULL, &tr, both ? &va : NULL, &err) != RN_OK) {
        fuzz_check_msg(err.msg, fuzz_dir());
        return 0;
    }
    for (size_t i = 0; i < tr.n; i++) {
        rn_image im;
        if (tr.labels[i] < 0 || tr.labels[i] >= tr.nclasses) abort();
        if (rn_dataset_get(&tr, i, 0, &im, &err) != RN_OK) abort();
        rn_image_free(&im);
    }
    rn_dataset_free(&tr);
    if (both) rn_dataset_free(&va);
    return 0;
}
