/*
** Gradient buckets of data-parallel training (see dist.h): where the flat
** gradient buffer is cut, and after which layer each piece is final. Kept
** apart from the MPI code so that it builds, and is tested, without MPI.
*/
#include "dist/dist.h"

/* Splits [0, n) into buckets at layer boundaries (see dist.h). After the
** backward of layer i every gradient at or above the largest parameter end
** of layers 0..i-1 is final, so those "watermarks", walked from the last
** layer down, are where a bucket may end; one is cut whenever at least
** `target` floats lie above the next watermark. */
int rn_dist_plan_buckets(const size_t *ends, int nlayers, size_t n, size_t target, size_t *lo, size_t *watermark) {
    int nb = 0;
    size_t hi = n, top = 0; /* top: the largest end so far */
    for (int i = 0; i < nlayers; i++) {
        watermark[i] = top; /* max end of layers 0..i-1 */
        if (ends[i] > top) top = ends[i];
    }
    for (int i = nlayers - 1; i > 0 && hi > 0; i--) {
        if (watermark[i] < hi && hi - watermark[i] >= target) {
            lo[nb++] = watermark[i];
            hi = watermark[i];
        }
    }
    if (hi > 0 || nb == 0) lo[nb++] = 0;
    return nb;
}
