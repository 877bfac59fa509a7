/*
** libFuzzer target: JPEG and PNG decoding as the data loader does it
** (rn_image_decode_mem is what rn_image_decode_file calls after reading
** the file), then the evaluation or training transform on the result, so
** odd decoded sizes (1 x N, EXIF-rotated, DCT-scaled) reach augmentation.
** Input: a byte choosing min_side (bits 0-2, 0 = full size) and train
** (bit 3), then the file.
*/
#include <stdint.h>
#include <stdlib.h>

#include "data/augment.h"
#include "data/data.h"
#include "fuzz_util.h"

/* Decodes one input and pushes a successful decode through the transform. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float out[12 * 10 * 3];
    if (size < 1) return 0;
    int min_side = (data[0] & 7) * 5, train = (data[0] >> 3) & 1;
    rn_image im;
    rn_error err;
    if (rn_image_decode_mem(data + 1, size - 1, "fuzz.img", min_side, &im, &err) != RN_OK) {
        fuzz_check_msg(err.msg, "fuzz.img");
        if (im.px) abort();
        return 0;
    }
    if (im.c != 3 || im.h < 1 || im.w < 1 || !im.px) abort();
    rn_augment a;
    if (rn_augment_preset(train ? "imagenet" : "none", 12, 10, 3, &a, &err) != RN_OK) abort();
    a.eval_resize = train ? 0 : 14;
    rn_augment_sample(&a, &im, train, 7, out);
    rn_image_free(&im);
    return 0;
}
