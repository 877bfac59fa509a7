/*
** What the user sees while training: a live progress bar for the batches of
** an epoch, the epoch table in fastai's console form, a smoothed running
** loss, and the CSV log kept next to the checkpoints.
**
** The table is exactly what fastai's ProgressCallback prints in a terminal
** (fastprogress's ConsoleMasterBar.write): each header name is padded with
** spaces to at least 8 characters and the names are joined by two spaces;
** each row cell is the value padded with spaces to its column's padded name
** length + 2. Floats have 6 decimals ("nan" when not a number), the time is
** mm:ss or h:mm:ss. For example
**     "epoch     train_loss  valid_loss  accuracy  time    "
**     "0         0.421307    0.350197    0.873200  00:42     "
**
** The report writes only to the stream it is given (the library prints only
** when asked to) and flushes after every write, so a bar shows up at once.
*/
#ifndef RN_REPORT_H
#define RN_REPORT_H

#include <stdio.h>

#include "resnet.h"

typedef struct rn_report rn_report;

/* Creates a report writing to out. tty: draw a live bar redrawn in place with
** '\r' at most ~10 times a second; 0: plain lines instead (one per ~10% of
** an epoch, no '\r'). color: colour the bar with ANSI escapes, unless the
** environment variable NO_COLOR is set to a non-empty value. top5: add a
** top_k_accuracy column to the table (for datasets with more than 10 classes). */
rn_status rn_report_create(FILE *out, int tty, int color, int top5, rn_report **r, rn_error *err);
void rn_report_free(rn_report *r);

/* Prints the table header; only the first call prints (rn_report_row prints
** it too if it has not been printed yet). */
void rn_report_header(rn_report *r);
/* Starts the bar of one pass over nbatches batches; phase is "train" or "valid". */
void rn_report_epoch_begin(rn_report *r, int epoch, size_t nbatches, const char *phase);
/* Reports that done of the pass's batches are finished: the bar
** "[#####.....] done/total loss L  N img/s  ETA mm:ss". */
void rn_report_batch(rn_report *r, size_t done, double running_loss, double images_per_s);
/* Ends the pass: clears the bar's line on a tty. */
void rn_report_epoch_end(rn_report *r);
/* Prints one table row. top5 is ignored unless the report was created with top5. */
void rn_report_row(rn_report *r, int epoch, double train_loss, double valid_loss, double accuracy,
                   double top5, double seconds);

/* Formats t seconds as fastai does: "mm:ss", or "h:mm:ss" from an hour on
** (whole seconds, truncated). Writes at most cap bytes; returns buf. */
char *rn_format_time(double t, char *buf, size_t cap);

/* A running loss smoothed like fastai's SmoothenValue / AvgSmoothLoss: an
** exponential moving average avg = beta*avg + (1-beta)*loss, reported
** debiased as avg / (1 - beta^n). Start from RN_SMOOTH_INIT (beta 0.98) or
** rn_smooth_init; avg and n are what a checkpoint keeps. */
typedef struct {
    double avg;
    long n;
    double beta;
} rn_smooth;

#define RN_SMOOTH_INIT {0.0, 0, 0.98}

/* Resets s to no values seen, with the given beta. */
void rn_smooth_init(rn_smooth *s, double beta);
/* Adds one loss and returns the debiased smoothed value. */
double rn_smooth_update(rn_smooth *s, double loss);
/* The current debiased smoothed value (NaN before the first loss). */
double rn_smooth_value(const rn_smooth *s);

/* Appends one row to the CSV log at path, first writing the header
** "epoch,train_loss,valid_loss,accuracy,top5,time,lr" when the file is new
** or empty. Losses and accuracies have 6 decimals, time is in seconds (3
** decimals), lr in %.6g; a NaN or infinite value is written as an empty
** field. A row left without its newline by a crash is ended first. */
rn_status rn_log_csv_append(const char *path, int epoch, double train_loss, double valid_loss, double acc,
                            double top5, double seconds, double lr, rn_error *err);
/* Rewrites the log keeping the header and the rows with epoch < keep_epochs
** (for resume: a resumed run's log then has no duplicate epochs). Lines that
** do not start with an epoch number are dropped. A missing file is not an
** error. The rewrite is atomic (temp file + rename). */
rn_status rn_log_csv_truncate(const char *path, int keep_epochs, rn_error *err);

/* Writes n bytes to path atomically: a unique temp file beside path, synced,
** then renamed over it; on failure path is left as it was. (Used by the log
** and the plots.) */
rn_status rn_file_write_atomic(const char *path, const void *data, size_t n, rn_error *err);

#endif
