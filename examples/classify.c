/* Prints the top-5 classes of an image file, with the model's own
** preprocessing. Build against an installed libresnet:
**     cc classify.c $(pkg-config --cflags --libs resnet) -o classify
**     ./classify model.safetensors photo.jpg */
#include <resnet.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    rn_model *m = NULL;
    rn_error err;
    if (argc != 3) return fprintf(stderr, "usage: %s MODEL.safetensors IMAGE\n", argv[0]), 2;
    if (rn_model_open(argv[1], &m, &err)) return fprintf(stderr, "classify: %s\n", err.msg), 1;
    int k = rn_model_spec(m)->classes, top[5];
    float *probs = malloc((size_t)k * sizeof *probs);
    rn_status st = probs ? rn_classify_file(m, argv[2], probs, &err) : RN_ERR_NOMEM;
    if (st) fprintf(stderr, "classify: %s\n", probs ? err.msg : "out of memory");
    for (int i = 0, n = st ? 0 : rn_top_k(probs, k, 5, top); i < n; i++) {
        const char *name = rn_model_class_name(m, top[i]);
        printf("  %-28s %.4f\n", name ? name : "?", probs[top[i]]);
    }
    free(probs);
    rn_model_free(m);
    return st ? 1 : 0;
}
