/*
** libFuzzer target: the CIFAR binary reader ("cifar10:DIR",
** "cifar100:DIR") as rn_dataset_open calls it for the test half. Input: a
** flags byte (bit 0: CIFAR-100), a 2-byte big-endian length L, L bytes of
** the class-names file (absent when L is 0), then the batch file.
*/
#include <stdint.h>
#include <stdlib.h>

#include "data/data.h"
#include "fuzz_util.h"

/* Opens one fuzzed CIFAR directory and checks what it accepts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int hundred = data[0] & 1;
    size_t l = ((size_t)data[1] << 8 | data[2]) % (size - 2);
    char path[512], spec[600];
    const char *names = hundred ? "fine_label_names.txt" : "batches.meta.txt";
    fuzz_file(hundred ? "batches.meta.txt" : "fine_label_names.txt", NULL, (size_t)-1, path, sizeof path);
    fuzz_file(hundred ? "test_batch.bin" : "test.bin", NULL, (size_t)-1, path, sizeof path);
    fuzz_file(names, data + 3, l ? l : (size_t)-1, path, sizeof path);
    fuzz_file(hundred ? "test.bin" : "test_batch.bin", data + 3 + l, size - 3 - l, path, sizeof path);
    snprintf(spec, sizeof spec, "cifar%s:%s", hundred ? "100" : "10", fuzz_dir());
    rn_dataset va;
    rn_error err;
    if (rn_dataset_open(spec, NULL, NULL, &va, &err) != RN_OK) {
        fuzz_check_msg(err.msg, fuzz_dir());
        return 0;
    }
    if (va.nclasses != (hundred ? 100 : 10) || va.h != 32 || va.w != 32 || va.c != 3) abort();
    for (size_t i = 0; i < va.n; i++)
        if (va.labels[i] < 0 || va.labels[i] >= va.nclasses) abort();
    for (int k = 0; k < va.nclasses; k++)
        if (!va.class_names[k]) abort();
    rn_dataset_free(&va);
    return 0;
}
