/*
** Pictures drawn with cairo: line charts (the lr finder, training curves),
** a confusion matrix and a prediction card.
**
** Every picture is written as PNG or SVG, chosen by the path's extension
** (".png" / ".svg", any case), atomically (rendered in memory, then temp
** file + rename), so a reader never sees half a picture. Text uses cairo's
** toy API with the "sans-serif" face.
**
** Colours follow matplotlib's so the pictures look like fastai's: series k
** is drawn in tab10 colour k (k mod 10): #1f77b4 blue, #ff7f0e orange,
** #2ca02c green, #d62728 red, #9467bd, #8c564b, #e377c2, #7f7f7f, #bcbd22,
** #17becf; the marker point is pure red (#ff0000); the confusion matrix uses
** the "Blues" colour map. The background is white.
*/
#ifndef RN_PLOT_H
#define RN_PLOT_H

#include <stdint.h>

#include "resnet.h"

/* One line of a chart: n points (x[i], y[i]); label NULL = not in the legend. */
typedef struct {
    const char *label;
    const double *x, *y;
    int n;
} rn_series;

/* A line chart (800x500) with axes, round-numbered ticks, axis labels, a
** title and a legend (only when some series has a label). logx: log10 x axis
** (the lr finder); points with x <= 0 are then skipped. (mark_x, mark_y):
** a point drawn as a red dot with its x value written beside it (the
** suggested lr); mark_x NaN = none, mark_y NaN = a vertical line at mark_x.
** NaN/Inf points are skipped (the line breaks there). title, xlabel, ylabel
** may be NULL. */
rn_status rn_plot_lines(const char *path, const char *title, const char *xlabel, const char *ylabel,
                        const rn_series *s, int ns, int logx, double mark_x, double mark_y, rn_error *err);

/* Training curves (1200x450): left panel train and valid loss against
** epochs (fractional epochs for per-step curves), right panel accuracy.
** valid_loss and acc may be NULL (no validation). */
rn_status rn_plot_training(const char *path, const double *epochs, const double *train_loss,
                           const double *valid_loss, const double *acc, int n, rn_error *err);

/* A confusion matrix (800x800) as a heat map, fastai's plot_confusion_matrix
** look: class names on both axes (x names rotated), counts in the cells
** (white on dark cells), "Actual" rows and "Predicted" columns. counts is
** k*k, row = actual, col = predicted. names may be NULL (class indices are
** shown); names and counts are left out where cells are too small for them. */
rn_status rn_plot_confusion(const char *path, int k, const char *const *names, const int64_t *counts,
                            rn_error *err);

/* An image with its top-k predictions beside it, as labelled bars (for
** `resnet predict --show`): rgb is (h,w,3) uint8, names[i] and probs[i]
** (in [0,1]) the i-th prediction in the order to show. 800 wide. */
rn_status rn_plot_prediction(const char *path, const uint8_t *rgb, int h, int w, const char *const *names,
                             const double *probs, int k, rn_error *err);

#endif
