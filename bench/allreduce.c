/*
** MPI_Allreduce bandwidth, for the data-parallel projection in
** BENCHMARKS.md: the time to sum float buffers from 4 KiB to the size of
** resnet50's gradients across the ranks, median of REPS runs, and the
** "bus bandwidth" a ring allreduce achieves, 2(N-1)/N * bytes / time (the
** bytes each rank sends and receives, per second).
**
**   mpirun -np 2 build/bench_allreduce [MAX_FLOATS]
*/
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define REPS 11

/* Sorts a few doubles (insertion sort) for the median. */
static void sort(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
}

/* Median seconds of REPS allreduces of n floats (all ranks take the slowest rank's time). */
static double time_allreduce(float *buf, int n) {
    double t[REPS];
    MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); /* warm-up */
    for (int r = 0; r < REPS; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[r] = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t[r], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    sort(t, REPS);
    return t[REPS / 2];
}

/* Prints one row per buffer size, doubling from 1024 floats. */
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long max = argc > 1 ? atol(argv[1]) : 25557032L; /* resnet50's parameters */
    float *buf = malloc((size_t)max * sizeof(float));
    if (!buf) {
        fprintf(stderr, "bench_allreduce: out of memory for %ld floats\n", max);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (long i = 0; i < max; i++) buf[i] = 1.0f;
    if (rank == 0) printf("%d ranks\n%12s %12s %14s\n", size, "bytes", "time_ms", "busbw_GB/s");
    for (long n = 1024;; n *= 2) {
        if (n > max) n = max;
        double t = time_allreduce(buf, (int)n);
        double bytes = (double)n * sizeof(float), bus = 2.0 * (size - 1) / size * bytes / t / 1e9;
        if (rank == 0) printf("%12.0f %12.3f %14.2f\n", bytes, t * 1e3, bus);
        if (n == max) break;
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
