/*
** Running the layer list: planning activation memory for an input shape,
** the forward pass (inference or training), the loss and the backward pass.
**
** The plan (rn_model_plan) decides, once per batch and input size:
**   - fusions: a ReLU whose input is a BN or a residual ADD read by nothing
**     else runs inside that layer's pass (BN+ReLU, ADD+ReLU forward; the
**     ReLU mask inside the BN backward or applied in place before the ADD
**     backward); in an eval plan, a BN whose conv feeds nothing else is
**     folded into that conv's weights when that costs less memory traffic
**     than the BN pass (weights no larger than the activation);
**   - in-place layers: a ReLU, an ADD (and in eval plans a BN) overwrites
**     an input that nothing else reads and whose value no backward needs,
**     as PyTorch's inplace=True does;
**   - gradient routing (training): the first layer, in backward order, to
**     send a gradient to a tensor overwrites it (BN, ReLU), or zeroes it and
**     accumulates (conv and the rest); an ADD passes its output gradient to
**     its operands without a copy, by handing them its memory, when no
**     operand's later accumulation can clobber what the other still needs;
**   - bf16 tensors (bf16 training): a convolution's output read by its BN
**     alone is stored in bf16 (RN_BF16_ACT); so are the gradient the BN's
**     backward hands back to it (RN_BF16_GRAD) and a BN's (+ ReLU's) output
**     read only by convolutions (RN_BF16_X), where the convolutions would
**     round them to the same values anyway; and, rounded as PyTorch's
**     autocast rounds it, the gradient a convolution hands back to the BN
**     (+ ReLU) whose output it alone reads (RN_BF16_DX);
**   - memory: every activation and gradient (or in-place chain of them) is
**     a slot live from its first to its last touch on the step's timeline
**     (forward i at time i, the loss at L, backward i at 2L - i); slots are
**     placed in one arena greedily, largest first, at the lowest offset that
**     does not overlap a slot live at the same time.
** The plan is exercised against a reference runner with no reuse and no
** fusion in tests/test_model.c.
*/
#include "model/model.h"
#include "core/error.h"
#include "kernels/cpu.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Elements of layer l's output for one sample (after planning). */
size_t rn_layer_size(const rn_layer *l) { return (size_t)l->h_out * l->w_out * l->c_out; }

/* The window shape of a CONV, MAXPOOL or PADSKIP layer of m for batch n
** (with m's convolution arithmetic). */
static rn_conv_shape window(const rn_model *m, const rn_layer *l, int n) {
    rn_conv_shape s = {n,    l->h_in,   l->w_in, l->c_in, l->h_out, l->w_out, l->c_out,
                       l->k, l->stride, l->pad,  m->prec != RN_PREC_FP32, m->prec == RN_PREC_BF16};
    return s;
}

/* Computes every layer's spatial size for an h x w input. */
rn_status rn_model_shapes(rn_model *m, int h, int w, rn_error *err) {
    if (h < 1 || w < 1 || h > 65536 || w > 65536)
        return rn_fail(err, RN_ERR_ARG, "input size %dx%d is out of range [1, 65536]", h, w);
    for (int i = 0; i < m->nlayers; i++) {
        rn_layer *l = &m->layers[i];
        l->h_in = l->src < 0 ? h : m->layers[l->src].h_out;
        l->w_in = l->src < 0 ? w : m->layers[l->src].w_out;
        switch (l->kind) {
        case RN_L_CONV:
        case RN_L_MAXPOOL:
            l->h_out = rn_out_size(l->h_in, l->k, l->stride, l->pad);
            l->w_out = rn_out_size(l->w_in, l->k, l->stride, l->pad);
            break;
        case RN_L_PADSKIP:
            l->h_out = (l->h_in + l->stride - 1) / l->stride;
            l->w_out = (l->w_in + l->stride - 1) / l->stride;
            break;
        case RN_L_GAP:
        case RN_L_FC: l->h_out = l->w_out = 1; break;
        default: l->h_out = l->h_in, l->w_out = l->w_in; break;
        }
        if (l->h_out < 1 || l->w_out < 1)
            return rn_fail(err, RN_ERR_ARG, "input %dx%d is too small for %s: layer %s would have an empty output",
                           h, w, m->spec.arch, l->name);
    }
    return RN_OK;
}

/* Number of threads kernels will use (for per-thread scratch). */
static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- planning ---------------------------------------------------------- */

/* Arena memory for one or more tensors (an in-place chain, or gradients
** handed on without a copy), live from time first to time last. */
typedef struct {
    size_t size, off; /* floats, rounded to a 64-byte line */
    int first, last;
} slot;

/* Slots a layer may open at most: its activation, its gradient, picks. */
#define SLOTS_PER_LAYER 3

/* Planning state: the model, the batch, and per tensor its slot. */
typedef struct {
    rn_model *m;
    int n, train, L;
    int *nread;        /* layers reading each activation */
    int *aslot, *gslot; /* slot of each activation and of its gradient, -1 none */
    int *pslot;         /* training: slot of each max pool's picks, -1 none */
    slot *slots;        /* room for SLOTS_PER_LAYER * L */
    int nslots;
} planner;

/* Floats rounded up to a 64-byte line. */
static size_t line(size_t floats) { return (floats + 15) & ~(size_t)15; }

/* A new slot of the given floats; returns its index. */
static int new_slot(planner *p, size_t floats) {
    slot *s = &p->slots[p->nslots];
    s->size = line(floats), s->off = 0, s->first = -1, s->last = -1;
    return p->nslots++;
}

/* Records that slot k is read or written at time t. */
static void touch(planner *p, int k, int t) {
    if (k < 0) return;
    slot *s = &p->slots[k];
    if (s->first < 0 || t < s->first) s->first = t;
    if (t > s->last) s->last = t;
}

/* Floats of activation i for the whole batch. */
static size_t act_floats(const planner *p, int i) { return (size_t)p->n * rn_layer_size(&p->m->layers[i]); }

/* Highest index of a layer reading activation s, other than layer `except`; -1 if none. */
static int last_reader_except(const rn_model *m, int s, int except) {
    int last = -1;
    for (int j = s + 1; j < m->nlayers; j++)
        if (j != except && (m->layers[j].src == s || (m->layers[j].kind == RN_L_ADD && m->layers[j].src2 == s)))
            last = j;
    return last;
}

/* Whether a max pool trains through picks (rn_maxpool_forward_pick): its
** backward then reads neither its input nor its output. */
static int pool_picks(const rn_layer *l) { return l->kind == RN_L_MAXPOOL && l->k * l->k < RN_POOL_NONE; }

/* Whether layer i's backward reads its own output (ReLU masks, a max
** pool's maxima without picks). */
static int needs_output(const rn_layer *l) {
    return l->kind == RN_L_RELU || (l->kind == RN_L_MAXPOOL && !pool_picks(l)) || l->fuse_relu;
}

/* Whether layer i's backward reads its input. */
static int needs_input(const rn_layer *l) {
    return l->kind == RN_L_CONV || l->kind == RN_L_BN || (l->kind == RN_L_MAXPOOL && !pool_picks(l)) ||
           l->kind == RN_L_FC;
}

/* Whether the one layer reading activation s may overwrite it: s has no
** other reader and, in training, s's own backward does not need it. */
static int can_overwrite(const planner *p, int s) {
    return s >= 0 && p->nread[s] == 1 && (!p->train || !needs_output(&p->m->layers[s]));
}

/* The later of a layer's operands: an ADD's src or src2, whichever is
** computed last (the one an ADD fused into a BN runs in); else its src. */
static int later_operand(const rn_layer *l) { return l->kind == RN_L_ADD && l->src2 > l->src ? l->src2 : l->src; }

/* Fusion and folding decisions. An eval plan folds a BN into the conv
** before it when that conv feeds nothing else and its weights are no more
** floats than its output (folding reads and writes the weights once per
** forward, the BN pass reads and writes the activation). A ReLU whose
** input is a BN or ADD read by nothing else runs inside that layer. In
** training, a residual ADD whose later operand (a projection shortcut's BN
** comes after the branch's last one) is a BN read by nothing else runs
** inside that BN's apply pass, ReLU included, reading the other operand:
** the BN writes the block's output in place of its own, which is then
** neither written nor read again. The ADD's backward is unchanged (the
** BN's backward needs x, not its output). */
static void plan_fusion(planner *p) {
    rn_model *m = p->m;
    for (int i = 0; i < p->L; i++) {
        rn_layer *l = &m->layers[i];
        l->fuse_relu = 0, l->skip = 0, l->fold = -1, l->fuse_add = -1, l->bf16_grad = 0, l->bf16_act = 0, l->bf16_x = 0;
        l->bf16_dy = 0;
        l->gmode[0] = l->gmode[1] = RN_G_ACC;
    }
    for (int i = 0; i < p->L; i++) {
        rn_layer *l = &m->layers[i];
        int s = l->src;
        if (s < 0) continue;
        rn_layer *in = &m->layers[s];
        if (!p->train && l->kind == RN_L_BN && in->kind == RN_L_CONV && p->nread[s] == 1 &&
            (size_t)in->k * in->k * in->c_in * in->c_out <= act_floats(p, s)) {
            in->fold = i;
            l->skip = RN_SKIP_FWD | RN_SKIP_BWD;
        }
        if (p->train && m->prec != RN_PREC_FP32 && l->kind == RN_L_BN && in->kind == RN_L_CONV && p->nread[s] == 1)
            in->bf16_act = 1;
        if (l->kind == RN_L_RELU && p->nread[s] == 1 && ((in->kind == RN_L_BN && !in->skip) || in->kind == RN_L_ADD)) {
            in->fuse_relu = 1;
            l->skip = RN_SKIP_FWD | RN_SKIP_BWD;
        }
        const int late = later_operand(l);
        rn_layer *bn = &m->layers[late];
        if (p->train && l->kind == RN_L_ADD && l->src2 != s && l->src2 >= 0 && bn->kind == RN_L_BN &&
            !bn->fuse_relu && p->nread[late] == 1) {
            bn->fuse_add = i;
            l->skip = RN_SKIP_FWD;
        }
    }
}

/* Whether every reader of activation t is a convolution that would round
** it to bf16 as it reads it (rn_conv_takes_bf16_x), and there is one. */
static int read_as_bf16(const planner *p, int t) {
    const rn_model *m = p->m;
    int readers = 0;
    for (int j = t + 1; j < p->L; j++) {
        const rn_layer *l = &m->layers[j];
        if (l->src != t && !(l->kind == RN_L_ADD && l->src2 == t)) continue;
        const rn_conv_shape s = window(m, l, p->n);
        if (l->kind != RN_L_CONV || !rn_conv_takes_bf16_x(&s)) return 0;
        readers++;
    }
    return readers > 0;
}

/* bf16 training: marks the BNs whose output (their fused ReLU's, if any)
** only such convolutions read, to be written in bf16 (RN_BF16_X): the same
** values, in half the bytes written and read. A BN summing a residual
** (fuse_add) writes a block's output, which the next residual sum reads. */
static void plan_bf16_x(planner *p) {
    rn_model *m = p->m;
    if (!p->train || m->prec == RN_PREC_FP32) return;
    for (int i = 0; i < p->L; i++) {
        rn_layer *l = &m->layers[i];
        if (l->kind != RN_L_BN || l->skip || l->fuse_add >= 0) continue;
        int t = i; /* the tensor its readers name: the fused ReLU's */
        for (int j = i + 1; l->fuse_relu && j < p->L; j++)
            if (m->layers[j].src == i && m->layers[j].kind == RN_L_RELU) t = j;
        if (!read_as_bf16(p, t)) continue;
        l->bf16_x = 1;
        m->layers[t].bf16_x = 1;
    }
}

/* The operand of BN i's fused ADD (l->fuse_add) that is not i: the
** residual its apply pass adds (computed before it, never the image). */
static int add_operand(const rn_model *m, const rn_layer *l, int i) {
    const rn_layer *a = &m->layers[l->fuse_add];
    return a->src == i ? a->src2 : a->src;
}

/* Gives every activation a slot: its own, or its input's for a layer that
** runs in place (fused ReLU, folded BN, in-place ReLU / ADD / eval BN). */
static void plan_activations(planner *p) {
    for (int i = 0; i < p->L; i++) {
        const rn_layer *l = &p->m->layers[i];
        int s = l->src, at = -1;
        /* fused ReLU, ADD or folded BN: its input's layer (an ADD's later one) writes its output */
        if (l->skip & RN_SKIP_FWD) at = later_operand(l);
        else if (l->kind == RN_L_RELU && can_overwrite(p, s)) at = s;
        else if (l->kind == RN_L_BN && !p->train && can_overwrite(p, s)) at = s;
        else if (l->kind == RN_L_ADD && s != l->src2)
            at = can_overwrite(p, s) ? s : can_overwrite(p, l->src2) ? l->src2 : -1;
        p->aslot[i] = at >= 0                            ? p->aslot[at]
                      : (l->bf16_act || l->bf16_x) ? new_slot(p, (act_floats(p, i) + 1) / 2) /* bf16 values */
                                                   : new_slot(p, act_floats(p, i));
    }
}

/* Whether layer p's backward only reads its output gradient (writes only
** its input's), so that memory may also hold another tensor's gradient. */
static int pure_reader(const rn_model *m, int p) {
    const rn_layer *l = &m->layers[p];
    if (l->kind == RN_L_RELU) return (l->skip & RN_SKIP_FWD) && m->layers[l->src].kind == RN_L_BN;
    return l->kind != RN_L_ADD;
}

/* Gradient routing of ADD a's operands (the first contribution to an
** operand's gradient hands it a's output gradient memory; see the file
** comment). With hi the later operand and lo the earlier, both may share it
** when hi is read by a alone and its backward only reads it, and every
** other reader of lo comes before hi, so that lo's later accumulations
** happen after hi's gradient has been consumed. */
static void plan_add_grads(planner *p, int a) {
    rn_model *m = p->m;
    rn_layer *l = &m->layers[a];
    int u = l->src, v = l->src2;
    int hi = u > v ? u : v, lo = u > v ? v : u;
    int first_hi = hi >= 0 && p->gslot[hi] < 0, first_lo = lo >= 0 && lo != hi && p->gslot[lo] < 0;
    int mode_hi = RN_G_ACC, mode_lo = RN_G_ACC;
    if (first_hi) p->gslot[hi] = p->gslot[a], mode_hi = RN_G_ALIAS;
    if (first_lo) {
        int share = !first_hi || (p->nread[hi] == 1 && pure_reader(m, hi) && last_reader_except(m, lo, a) < hi);
        if (share) p->gslot[lo] = p->gslot[a], mode_lo = RN_G_ALIAS;
        else p->gslot[lo] = new_slot(p, act_floats(p, lo)), mode_lo = RN_G_SET;
    }
    l->gmode[0] = u == hi ? mode_hi : mode_lo;
    l->gmode[1] = u == hi ? mode_lo : mode_hi;
    if (u == v) l->gmode[1] = RN_G_ACC; /* y = x + x: the second half adds onto the first */
}

/* Whether the gradient of conv s's output, written by the BN that alone
** reads it, may be kept in bf16: the conv's backward then reads the same
** values it would have rounded from fp32 (rn_conv_takes_bf16_grad), so
** nothing changes but the bytes (half, written once and read twice). */
static int bf16_grad_ok(const planner *p, int s) {
    const rn_layer *c = &p->m->layers[s];
    if (c->kind != RN_L_CONV || c->bias || p->nread[s] != 1) return 0;
    const rn_conv_shape sh = window(p->m, c, p->n);
    return rn_conv_takes_bf16_grad(&sh);
}

/* The BN whose output (through its fused ReLU) is activation s, when the
** gradient of s may be kept in bf16, written by conv layer i alone
** (RN_BF16_DX): a bf16 training plan, i the only reader of s, a BN that
** sums no residual, and a convolution that rounds its dx tiles as it
** stores them (rn_conv_gives_bf16_dx). Else -1. */
static int bf16_dy_bn(const planner *p, const rn_layer *l, int s) {
    const rn_model *m = p->m;
    if (!p->train || m->prec == RN_PREC_FP32 || l->kind != RN_L_CONV || p->nread[s] != 1) return -1;
    int b = s;
    if (m->layers[s].kind == RN_L_RELU && (m->layers[s].skip & RN_SKIP_FWD)) b = m->layers[s].src; /* fused */
    const rn_layer *bn = &m->layers[b];
    if (bn->kind != RN_L_BN || bn->skip || bn->fuse_add >= 0 || (b != s && !bn->fuse_relu)) return -1;
    const rn_conv_shape sh = window(m, l, p->n);
    return rn_conv_gives_bf16_dx(&sh) ? b : -1;
}

/* Gives every gradient a slot, walking the layers in backward order, and
** records how each layer's backward treats its input's gradient. A layer
** that no gradient reaches skips its backward. */
static void plan_gradients(planner *p) {
    rn_model *m = p->m;
    p->gslot[p->L - 1] = new_slot(p, act_floats(p, p->L - 1));
    for (int i = p->L - 1; i >= 0; i--) {
        rn_layer *l = &m->layers[i];
        int s = l->src, bn;
        if (p->gslot[i] < 0) {
            l->skip |= RN_SKIP_BWD;
            continue;
        }
        if (l->kind == RN_L_RELU && (l->skip & RN_SKIP_FWD)) {
            p->gslot[s] = p->gslot[i]; /* fused: the BN or ADD before applies the mask */
            continue;
        }
        if (l->kind == RN_L_ADD) {
            plan_add_grads(p, i);
            continue;
        }
        if (s < 0) continue;
        if (p->gslot[s] >= 0) {
            l->gmode[0] = RN_G_ACC;
        } else if (l->kind == RN_L_RELU && p->aslot[i] == p->aslot[s]) {
            p->gslot[s] = p->gslot[i], l->gmode[0] = RN_G_ALIAS; /* mask in place */
        } else if (l->kind == RN_L_BN && bf16_grad_ok(p, s)) {
            p->gslot[s] = new_slot(p, (act_floats(p, s) + 1) / 2); /* bf16 values */
            m->layers[s].bf16_grad = 1, l->gmode[0] = RN_G_SET;
        } else if ((bn = bf16_dy_bn(p, l, s)) >= 0) {
            p->gslot[s] = new_slot(p, (act_floats(p, s) + 1) / 2); /* bf16 values */
            m->layers[s].bf16_dy = m->layers[bn].bf16_dy = 1, l->gmode[0] = RN_G_SET;
        } else {
            p->gslot[s] = new_slot(p, act_floats(p, s));
            /* BN, ReLU, convolutions and pools with picks can write their input gradient outright */
            l->gmode[0] = (l->kind == RN_L_BN || l->kind == RN_L_RELU || l->kind == RN_L_CONV || pool_picks(l))
                              ? RN_G_SET
                              : RN_G_ZERO;
        }
    }
}

/* Records every slot touch of one step: forward i at time i, the loss at L,
** backward i at 2L - i (what each kernel reads and writes). */
static void plan_lifetimes(planner *p) {
    const rn_model *m = p->m;
    int L = p->L;
    for (int i = 0; i < L; i++) {
        const rn_layer *l = &m->layers[i];
        if (l->skip & RN_SKIP_FWD) continue;
        touch(p, p->aslot[i], i);
        touch(p, p->pslot[i], i);
        if (l->src >= 0) touch(p, p->aslot[l->src], i);
        if (l->kind == RN_L_ADD && l->src2 >= 0) touch(p, p->aslot[l->src2], i);
        if (l->fuse_add >= 0) touch(p, p->aslot[add_operand(m, l, i)], i);
    }
    touch(p, p->aslot[L - 1], L);
    if (!p->train) return;
    touch(p, p->gslot[L - 1], L);
    for (int i = L - 1; i >= 0; i--) {
        const rn_layer *l = &m->layers[i];
        int t = 2 * L - i;
        if (l->skip & RN_SKIP_BWD) continue;
        touch(p, p->gslot[i], t);
        if (l->src >= 0) touch(p, p->gslot[l->src], t);
        if (l->kind == RN_L_ADD && l->src2 >= 0) touch(p, p->gslot[l->src2], t);
        if (needs_input(l) && l->src >= 0) touch(p, p->aslot[l->src], t);
        if (needs_output(l)) touch(p, p->aslot[i], t);
        touch(p, p->pslot[i], t);
    }
}

/* Places the slots: each, largest first, at the lowest offset where it
** overlaps no already placed slot whose life overlaps its own. Returns the
** floats spanned. `order` and `placed` are scratch of nslots ints. */
static size_t place_slots(planner *p, int *order, int *placed) {
    size_t total = 0;
    int np = 0;
    /* insertion sort by size, largest first, ties by first touch (qsort
    ** would need a file-scope pointer to the slots) */
    for (int a = 0; a < p->nslots; a++) {
        int key = order[a] = a, b = a - 1;
        const slot *ks = &p->slots[key];
        for (; b >= 0; b--) {
            const slot *bs = &p->slots[order[b]];
            if (bs->size > ks->size || (bs->size == ks->size && bs->first <= ks->first)) break;
            order[b + 1] = order[b];
        }
        order[b + 1] = key;
    }
    for (int a = 0; a < p->nslots; a++) {
        slot *s = &p->slots[order[a]];
        if (s->first < 0) continue; /* never touched */
        size_t off = 0;
        for (int moved = 1; moved;) { /* first fit: bump past every conflict until none is left */
            moved = 0;
            for (int b = 0; b < np; b++) {
                const slot *o = &p->slots[placed[b]];
                if (o->last < s->first || s->last < o->first) continue;
                if (off < o->off + o->size && o->off < off + s->size) off = o->off + o->size, moved = 1;
            }
        }
        s->off = off;
        placed[np++] = order[a];
        if (off + s->size > total) total = off + s->size;
    }
    return total;
}

/* Frees the planner's arrays. */
static void planner_free(planner *p) {
    free(p->nread);
    free(p->aslot);
    free(p->gslot);
    free(p->pslot);
    free(p->slots);
}

/* Decides fusions, in-place layers and (training) gradient routing, and
** places every tensor slot; returns the floats they span. */
static size_t plan_tensors(planner *p, int *scratch) {
    for (int i = 0; i < p->L; i++) {
        const rn_layer *l = &p->m->layers[i];
        p->aslot[i] = p->gslot[i] = p->pslot[i] = -1;
        if (l->src >= 0) p->nread[l->src]++;
        if (l->kind == RN_L_ADD && l->src2 >= 0 && l->src2 != l->src) p->nread[l->src2]++;
    }
    plan_fusion(p);
    plan_bf16_x(p);
    plan_activations(p);
    if (p->train) {
        plan_gradients(p);
        for (int i = 0; i < p->L; i++) /* one byte per output value */
            if (pool_picks(&p->m->layers[i])) p->pslot[i] = new_slot(p, (act_floats(p, i) + 3) / 4);
    }
    plan_lifetimes(p);
    return place_slots(p, scratch, scratch + SLOTS_PER_LAYER * p->L);
}

/* Floats of the convolution (and bf16 head) workspace (*ws) and of the
** folded-weight scratch (*fold: the largest folded conv's weights and bias)
** for batch n. */
static void scratch_floats(const rn_model *m, int n, size_t *ws, size_t *fold) {
    *ws = *fold = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        if (l->kind == RN_L_FC && m->prec != RN_PREC_FP32) {
            size_t need = rn_fc_workspace_bf16(n, l->c_in, l->c_out);
            if (need > *ws) *ws = need;
        }
        if (l->kind != RN_L_CONV) continue;
        rn_conv_shape s = window(m, l, n);
        size_t need = rn_conv_workspace(&s, max_threads());
        size_t wf = (size_t)l->k * l->k * l->c_in * l->c_out + l->c_out;
        if (need > *ws) *ws = need;
        if (l->fold >= 0 && wf > *fold) *fold = wf;
    }
}

/* Lays out the plan for (n, h, w, train) in p (allocating its tables and
** *scratch, which the caller frees with planner_free and free) and returns
** the floats of the whole arena through *arena; *ws and *fold are the
** convolution workspace and folded-weight scratch inside it. */
static rn_status plan_layout(rn_model *m, int n, int h, int w, int train, planner *p, int **scratch, size_t *arena,
                             size_t *ws, size_t *fold, rn_error *err) {
    int L = m->nlayers;
    *p = (planner){.m = m, .n = n, .train = train, .L = L, .nread = calloc((size_t)L, sizeof(int)),
                   .aslot = calloc((size_t)L, sizeof(int)), .gslot = calloc((size_t)L, sizeof(int)),
                   .pslot = calloc((size_t)L, sizeof(int)), .slots = calloc(SLOTS_PER_LAYER * (size_t)L, sizeof(slot))};
    *scratch = malloc(2 * SLOTS_PER_LAYER * (size_t)L * sizeof(int)); /* placement order, then placed */
    if (n < 1) return rn_fail(err, RN_ERR_ARG, "batch size must be positive, got %d", n);
    rn_status st = rn_model_shapes(m, h, w, err);
    if (st) return st;
    if (!p->nread || !p->aslot || !p->gslot || !p->pslot || !p->slots || !*scratch)
        return rn_fail(err, RN_ERR_NOMEM, "out of memory planning %s", m->spec.arch);
    size_t body = plan_tensors(p, *scratch);
    scratch_floats(m, n, ws, fold);
    m->tensor_floats = body;
    *arena = 4 * line(m->nstats) + line(*ws) + line(*fold) + body;
    return RN_OK;
}

/* Bytes of the arena rn_model_plan would allocate for (n, h, w, train),
** without allocating it: what a run checks against the memory it has
** before it starts. The layers then describe this layout, so the next
** forward plans again. */
rn_status rn_model_plan_size(rn_model *m, int n, int h, int w, int train, size_t *bytes, rn_error *err) {
    planner p;
    int *scratch;
    size_t arena = 0, ws, fold;
    rn_model_touch(m);
    m->plan_n = 0; /* no plan has batch 0: the next forward plans again */
    rn_status st = plan_layout(m, n, h, w, train, &p, &scratch, &arena, &ws, &fold, err);
    planner_free(&p);
    free(scratch);
    *bytes = arena * sizeof(float);
    return st;
}

/* Makes sure activation memory is planned for (n, h, w, train): decides
** fusions and in-place layers, lays every activation (and in training every
** gradient) out in one arena by lifetime, and adds the BN batch statistics,
** the convolution workspace and (eval) the folded-weight scratch. */
rn_status rn_model_plan(rn_model *m, int n, int h, int w, int train, rn_error *err) {
    if (m->arena && m->plan_n == n && m->plan_h == h && m->plan_w == w && m->plan_train >= train) return RN_OK;
    rn_model_touch(m); /* a new plan may fold other BNs */
    int L = m->nlayers, *scratch;
    planner p;
    size_t ws = 0, fold = 0;
    free(m->arena);
    free(m->act);
    free(m->pick);
    m->arena = NULL;
    m->arena_floats = m->tensor_floats = 0;
    m->plan_n = 0;
    m->act = calloc(2 * (size_t)L, sizeof(float *));
    m->pick = calloc((size_t)L, sizeof(unsigned char *));
    rn_status st = plan_layout(m, n, h, w, train, &p, &scratch, &m->arena_floats, &ws, &fold, err);
    if (!st && m->act && m->pick) m->arena = malloc((m->arena_floats ? m->arena_floats : 1) * sizeof(float));
    if (!m->arena) {
        planner_free(&p);
        free(scratch);
        if (st) return st;
        return rn_fail(err, RN_ERR_NOMEM, "out of memory planning %s for batch %d at %dx%d (%.1f GB)",
                       m->spec.arch, n, h, w, m->arena_floats * 4.0 / 1e9);
    }
    m->dact = m->act + L;
    m->bn_mean = m->arena;
    m->bn_invstd = m->bn_mean + line(m->nstats);
    m->bn_dmu = m->bn_invstd + line(m->nstats);
    m->bn_scale = m->bn_dmu + line(m->nstats);
    m->ws = m->bn_scale + line(m->nstats);
    m->fold_w = m->ws + line(ws);
    float *base = m->fold_w + line(fold);
    for (int i = 0; i < L; i++) {
        m->act[i] = base + p.slots[p.aslot[i]].off;
        m->dact[i] = p.gslot[i] >= 0 ? base + p.slots[p.gslot[i]].off : NULL;
        m->pick[i] = p.pslot[i] >= 0 ? (unsigned char *)(base + p.slots[p.pslot[i]].off) : NULL;
    }
    planner_free(&p);
    free(scratch);
    m->plan_n = n, m->plan_h = h, m->plan_w = w, m->plan_train = train;
    return RN_OK;
}

/* Sets the convolutions' arithmetic; bf16 needs AVX512_BF16. The plan is
** dropped, since the convolution workspace depends on the data type. */
rn_status rn_model_set_precision(rn_model *m, rn_precision prec, rn_error *err) {
    if (prec != RN_PREC_FP32 && prec != RN_PREC_BF16 && prec != RN_PREC_BF16_DIRECT)
        return rn_fail(err, RN_ERR_ARG, "unknown data type %d", (int)prec);
    if (prec != RN_PREC_FP32 && !rn_cpu_has_bf16())
        return rn_fail(err, RN_ERR_UNSUPPORTED,
                       "bf16 needs a CPU with AVX512_BF16 (vdpbf16ps), which this one (%s kernels) lacks; "
                       "use fp32",
                       rn_cpu_dispatch()->name);
    if (prec != m->prec)
        m->plan_n = 0; /* replan: no plan has batch 0 */
    m->prec = prec;
    return RN_OK;
}

/* Parses a data type name: fp32|float32, bf16|bfloat16 or bf16-direct;
** -1 if none. */
int rn_precision_parse(const char *s) {
    if (!strcmp(s, "fp32") || !strcmp(s, "float32"))
        return RN_PREC_FP32;
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16"))
        return RN_PREC_BF16;
    if (!strcmp(s, "bf16-direct"))
        return RN_PREC_BF16_DIRECT;
    return -1;
}

/* Bytes of the current plan's arena (0 before any forward). */
size_t rn_model_plan_bytes(const rn_model *m) { return m->arena ? m->arena_floats * sizeof(float) : 0; }

/* ---- running ----------------------------------------------------------- */

/* The weights and bias conv layer l runs with: its own, or (eval plans)
** with the BN reading it folded in, written to m->fold_w. */
static void conv_weights(rn_model *m, const rn_layer *l, const float **wt, const float **b) {
    const float *P = m->params;
    *wt = P + l->w, *b = l->bias ? P + l->b : NULL;
    if (l->fold >= 0) {
        const rn_layer *bn = &m->layers[l->fold];
        size_t rows = (size_t)l->k * l->k * l->c_in;
        float *wf = m->fold_w, *bf = m->fold_w + rows * l->c_out;
        rn_bn_fold(rows, l->c_out, *wt, *b, P + bn->w, P + bn->b, m->spec.bn_eps, m->buffers + bn->rmean,
                   m->buffers + bn->rvar, wf, bf);
        *wt = wf, *b = bf;
    }
}

/* Floats of one conv's prepared bias and bf16 weights (as pairs of bf16),
** or of the head's packed bf16 weights (rn_fc_pack_bf16). */
static size_t prep_floats(const rn_model *m, const rn_layer *l) {
    if (l->kind == RN_L_FC) return line((size_t)(l->c_in + 1) / 2 * l->c_out);
    const rn_conv_shape s = window(m, l, 1);
    return line((size_t)l->c_out) + line(rn_conv_packed_values(&s) / 2 + 1);
}

/* Conv layer i's prepared bias (c_out floats), followed by its packed
** weights at prep_weights. */
static float *prep_bias(const rn_model *m, int i) { return m->prep + m->prep_off[i]; }
static uint16_t *prep_weights(const rn_model *m, const rn_layer *l, int i) {
    return (uint16_t *)(prep_bias(m, i) + line((size_t)l->c_out));
}
/* The head's (layer i's) prepared weights, packed by rn_fc_pack_bf16. */
static uint16_t *prep_head(const rn_model *m, int i) { return (uint16_t *)(m->prep + m->prep_off[i]); }

/* bf16 inference on an eval plan for batch n: packs every direct bf16
** conv's weights (folded as the plan says) once, so that later passes read
** neither the fp32 weights nor the BN statistics. A conv that runs by
** Winograd at this batch folds and transforms its weights at every call
** instead (rn_conv_forward_packs). The head's weights are packed too.
** Returns 0 when memory is short (the convolutions and the head then pack
** per call, as in training). Room is kept for every conv, since another
** batch size may turn Winograd off. */
static int prepare_bf16(rn_model *m, int n) {
    if (!m->prep) {
        size_t total = 0;
        m->prep_off = malloc((size_t)m->nlayers * sizeof(size_t));
        for (int i = 0; m->prep_off && i < m->nlayers; i++) {
            const rn_layer *l = &m->layers[i];
            m->prep_off[i] = total;
            if (l->kind == RN_L_CONV || l->kind == RN_L_FC) total += prep_floats(m, l);
        }
        m->prep = m->prep_off ? malloc((total ? total : 1) * sizeof(float)) : NULL;
        if (!m->prep) {
            free(m->prep_off), m->prep_off = NULL;
            return 0;
        }
    }
    for (int i = 0; i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        rn_conv_shape s = window(m, l, n);
        if (l->kind == RN_L_FC) rn_fc_pack_bf16(l->c_in, l->c_out, m->params + l->w, prep_head(m, i));
        if (l->kind != RN_L_CONV || !rn_conv_forward_packs(&s)) continue;
        const float *wt, *b;
        conv_weights(m, l, &wt, &b);
        float *bias = prep_bias(m, i);
        for (int c = 0; c < l->c_out; c++) bias[c] = b ? b[c] : 0.0f;
        rn_conv_pack_bf16(&s, wt, prep_weights(m, l, i));
    }
    m->prep_ok = 1;
    return 1;
}

/* The bf16 flags (kernels.h) of the tensors between layer l and its input
** layer: that layer's output (RN_BF16_ACT from a convolution, RN_BF16_X
** from a BN or its fused ReLU) and the gradient l hands back to it
** (RN_BF16_GRAD to a convolution, RN_BF16_DX from a convolution to a BN).
** The planner sets each only on the pairs that use it (a convolution and
** the BN reading it alone; a BN and the convolutions reading it), so both
** sides pass the same flags. */
static int in_flags(const rn_model *m, const rn_layer *l) {
    if (l->src < 0) return 0;
    const rn_layer *s = &m->layers[l->src];
    return (s->bf16_act ? RN_BF16_ACT : 0) | (s->bf16_x ? RN_BF16_X : 0) | (s->bf16_grad ? RN_BF16_GRAD : 0) |
           (s->bf16_dy ? RN_BF16_DX : 0);
}

/* The bf16 flags of layer l's own output: RN_BF16_ACT (a convolution's)
** or RN_BF16_X (a BN's). */
static int out_flags(const rn_layer *l) { return (l->bf16_act ? RN_BF16_ACT : 0) | (l->bf16_x ? RN_BF16_X : 0); }

/* Whether an eval plan's bf16 weights are packed (packing them now if
** not): on a training plan, or when memory is short, layers pack per call. */
static int prepared(rn_model *m, int n) { return !m->plan_train && (m->prep_ok || prepare_bf16(m, n)); }

/* Runs convolution layer i forward, with the BN reading it folded into its
** weights and bias when the plan says so (eval plans); bf16 inference on
** an eval plan uses the weights prepare_bf16 packed, except by Winograd
** (resnet18 at batch 1, 224 px: 5.6 -> 5.1 ms with its first two stages
** so). */
static void conv_forward(rn_model *m, const rn_layer *l, int i, int n, const float *x, float *y) {
    rn_conv_shape s = window(m, l, n);
    if (s.bf16 && rn_conv_forward_packs(&s) && prepared(m, n)) {
        rn_conv_forward_packed(&s, x, prep_weights(m, l, i), prep_bias(m, i), y, m->ws);
        return;
    }
    const float *wt, *b;
    conv_weights(m, l, &wt, &b);
    rn_conv_forward_ex(&s, x, wt, b, y, m->ws, in_flags(m, l) | out_flags(l));
}

/* Runs the head (layer i) forward: in bf16 for a bf16 model, with the
** weights prepare_bf16 packed on an eval plan, else in fp32. */
static void fc_forward(rn_model *m, const rn_layer *l, int i, int n, const float *x, float *y) {
    const float *P = m->params;
    if (m->prec == RN_PREC_FP32) {
        rn_fc_forward(n, l->c_in, l->c_out, x, P + l->w, P + l->b, y);
        return;
    }
    rn_fc_forward_bf16(n, l->c_in, l->c_out, x, P + l->w, prepared(m, n) ? prep_head(m, i) : NULL, P + l->b, y,
                       m->ws);
}

/* The batchnorm synchronization of data-parallel training, or NULL. */
static const rn_bn_sync *bn_sync(const rn_model *m) {
    return m->hooks && m->hooks->bn.sum ? &m->hooks->bn : NULL;
}

/* ADD a's forward on cnt values: y = a + b, and its fused ReLU. */
static void add_forward(const rn_layer *a, size_t cnt, const float *x, const float *b, float *y) {
    if (a->fuse_relu) rn_add_relu_forward(cnt, x, b, y);
    else rn_add_forward(cnt, x, b, y);
}

/* Runs layer l forward on a batch of n (nothing for a layer fused into
** its input's). */
static void layer_forward(rn_model *m, const rn_layer *l, int i, int n, int train) {
    if (l->skip & RN_SKIP_FWD) return;
    const float *x = l->src < 0 ? m->input : m->act[l->src];
    float *y = m->act[i], *P = m->params;
    size_t rows = (size_t)n * l->h_out * l->w_out;
    int relu = l->fuse_relu ? RN_FUSE_RELU : 0, bf = in_flags(m, l) | out_flags(l);
    rn_conv_shape s = window(m, l, n);
    switch (l->kind) {
    case RN_L_CONV: conv_forward(m, l, i, n, x, y); break;
    case RN_L_BN:
        if (train) {
            const rn_bn_relu_mask keep = {m->bn_dmu + l->stat, m->bn_scale + l->stat, P + l->b};
            const rn_layer *a = l->fuse_add >= 0 ? &m->layers[l->fuse_add] : NULL; /* y is also a's output */
            const float *add = a ? m->act[add_operand(m, l, i)] : NULL;
            rn_bn_forward_train_sync(rows, l->c_out, x, P + l->w, P + l->b, m->spec.bn_eps, m->spec.bn_momentum,
                                     m->buffers + l->rmean, m->buffers + l->rvar, m->bn_mean + l->stat,
                                     m->bn_invstd + l->stat, y,
                                     (a ? (a->fuse_relu ? RN_FUSE_RELU : 0) : relu) | bf,
                                     bn_sync(m), relu ? &keep : NULL, add);
            m->nbt[l->bn]++;
        } else {
            rn_bn_forward_eval_ex(rows, l->c_out, x, P + l->w, P + l->b, m->spec.bn_eps, m->buffers + l->rmean,
                                  m->buffers + l->rvar, y, relu | bf);
            if (l->fuse_add >= 0) /* an eval pass on a training plan: the fused ADD's own pass, then */
                add_forward(&m->layers[l->fuse_add], rows * l->c_out, y, m->act[add_operand(m, l, i)], y);
        }
        break;
    case RN_L_RELU: rn_relu_forward(rows * l->c_out, x, y); break;
    case RN_L_ADD: add_forward(l, rows * l->c_out, x, m->act[l->src2], y); break;
    case RN_L_MAXPOOL:
        if (train && m->pick[i]) rn_maxpool_forward_pick(&s, x, y, m->pick[i]);
        else rn_maxpool_forward(&s, x, y);
        break;
    case RN_L_PADSKIP: rn_padskip_forward(&s, l->pad, x, y); break;
    case RN_L_GAP: rn_gap_forward(n, l->h_in * l->w_in, l->c_in, x, y); break;
    case RN_L_FC: fc_forward(m, l, i, n, x, y); break;
    }
}

/* Backward of an ADD: applies a fused ReLU's mask in place, then sends the
** gradient to each operand as planned (shared memory, copy, or add). */
static void add_backward(rn_model *m, const rn_layer *l, int i, size_t cnt) {
    float *dy = m->dact[i];
    if (l->fuse_relu) rn_relu_backward_ex(cnt, m->act[i], dy, dy, RN_FUSE_SET);
    for (int k = 0; k < 2; k++) {
        int o = k ? l->src2 : l->src;
        if (o < 0 || l->gmode[k] == RN_G_ALIAS) continue;
        if (l->gmode[k] == RN_G_SET) memcpy(m->dact[o], dy, cnt * sizeof(float));
        else rn_add_backward(cnt, dy, m->dact[o], NULL);
    }
}

/* Runs layer l backward: its input gradients and parameter gradients. */
static void layer_backward(rn_model *m, const rn_layer *l, int i, int n) {
    if (l->skip & RN_SKIP_BWD) return;
    const float *x = l->src < 0 ? m->input : m->act[l->src];
    const float *dy = m->dact[i], *P = m->params;
    float *dx = l->src < 0 ? NULL : m->dact[l->src], *G = m->grads;
    size_t rows = (size_t)n * l->h_out * l->w_out;
    rn_conv_shape s = window(m, l, n);
    if (dx && l->gmode[0] == RN_G_ZERO)
        memset(dx, 0, (size_t)n * rn_layer_size(&m->layers[l->src]) * sizeof(float));
    int set = l->gmode[0] == RN_G_ACC ? 0 : RN_FUSE_SET;
    switch (l->kind) {
    case RN_L_CONV:
        rn_conv_backward_ex(&s, x, P + l->w, dy, dx, G + l->w, l->bias ? G + l->b : NULL, m->ws,
                            set | (l->bf16_grad ? RN_BF16_GRAD : 0) | in_flags(m, l));
        break;
    case RN_L_BN: { /* a fused ReLU's mask is recomputed from x (the forward kept dmu and scale), not read from y */
        const rn_bn_relu_mask kept = {m->bn_dmu + l->stat, m->bn_scale + l->stat, P + l->b};
        rn_bn_backward_sync(rows, l->c_out, x, m->act[i], P + l->w, m->bn_mean + l->stat, m->bn_invstd + l->stat,
                            dy, dx, G + l->w, G + l->b,
                            (l->fuse_relu ? RN_FUSE_RELU : 0) | set | in_flags(m, l) |
                                (l->bf16_dy ? RN_BF16_DX : 0),
                            bn_sync(m),
                            l->fuse_relu ? &kept : NULL);
        break;
    }
    case RN_L_RELU:
        if (dx) rn_relu_backward_ex(rows * l->c_out, m->act[i], dy, dx, set);
        break;
    case RN_L_ADD: add_backward(m, l, i, rows * l->c_out); break;
    case RN_L_MAXPOOL:
        if (m->pick[i]) rn_maxpool_backward_pick(&s, m->pick[i], dy, dx, set);
        else rn_maxpool_backward(&s, x, m->act[i], dy, dx);
        break;
    case RN_L_PADSKIP: rn_padskip_backward(&s, l->pad, dy, dx); break;
    case RN_L_GAP: rn_gap_backward(n, l->h_in * l->w_in, l->c_in, dy, dx); break;
    case RN_L_FC:
        if (m->prec == RN_PREC_FP32) rn_fc_backward(n, l->c_in, l->c_out, x, P + l->w, dy, dx, G + l->w, G + l->b);
        else rn_fc_backward_bf16(n, l->c_in, l->c_out, x, P + l->w, dy, dx, G + l->w, G + l->b, m->ws);
        break;
    }
}

/* Runs the network on x: (N,H,W,C) and copies the logits (N,K) out; the
** caller holds m->lock. */
static rn_status forward_locked(rn_model *m, const float *x, int n, int h, int w, int train, float *logits,
                                rn_error *err) {
    rn_status st = rn_model_plan(m, n, h, w, train, err);
    if (st) return st;
    for (int i = 0; train && i < m->nlayers; i++) {
        const rn_layer *l = &m->layers[i];
        if (l->kind == RN_L_BN && (size_t)n * l->h_out * l->w_out < 2)
            return rn_fail(err, RN_ERR_ARG,
                           "batch %d at %dx%d is too small to train %s: %s would normalize a single value "
                           "per channel", n, h, w, m->spec.arch, l->name);
    }
    m->input = x;
    if (train) rn_model_touch(m); /* updates the BN statistics; an optimizer step follows */
    for (int i = 0; i < m->nlayers; i++) layer_forward(m, &m->layers[i], i, n, train);
    if (logits) memcpy(logits, m->act[m->nlayers - 1], (size_t)n * m->spec.classes * sizeof(float));
    return RN_OK;
}

/* Runs the network under the model's lock, so that several threads may
** run one model (their passes take turns). */
rn_status rn_model_forward(rn_model *m, const float *x, int n, int h, int w, int train, float *logits,
                           rn_error *err) {
    pthread_mutex_lock(&m->lock);
    rn_status st = forward_locked(m, x, n, h, w, train, logits, err);
    pthread_mutex_unlock(&m->lock);
    return st;
}

/* Backward pass from dlogits: (N,K), which may already sit in the last
** layer's gradient buffer, after a training-mode forward on a training plan.
** Activation gradients need no zeroing: the plan makes each one's first
** contribution overwrite, or zero just before. */
void rn_model_backward(rn_model *m, const float *dlogits) {
    int n = m->plan_n, last = m->nlayers - 1;
    memset(m->grads, 0, m->nparams * sizeof(float));
    if (dlogits != m->dact[last]) memcpy(m->dact[last], dlogits, (size_t)n * m->spec.classes * sizeof(float));
    for (int i = last; i >= 0; i--) {
        layer_backward(m, &m->layers[i], i, n);
        if (m->hooks) m->hooks->layer_done(m->hooks->ctx, i);
    }
}

/* Forward in training mode, loss, backward; grads hold d(loss)/d(params). */
rn_status rn_model_train_step(rn_model *m, const float *x, const int *labels, int n, int h, int w,
                              float label_smoothing, float *logits, double *loss, rn_error *err) {
    int k = m->spec.classes;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return rn_fail(err, RN_ERR_ARG, "label %d of sample %d is outside [0, %d)", labels[i], i, k);
    if (!(label_smoothing >= 0 && label_smoothing < 1))
        return rn_fail(err, RN_ERR_ARG, "label smoothing must be in [0, 1), got %g", label_smoothing);
    pthread_mutex_lock(&m->lock);
    rn_status st = forward_locked(m, x, n, h, w, 1, logits, err);
    if (!st) {
        /* The loss writes dlogits straight into the FC output's gradient. */
        float *dz = m->dact[m->nlayers - 1];
        double l = rn_softmax_xent(n, k, m->act[m->nlayers - 1], labels, label_smoothing, dz);
        rn_model_backward(m, dz);
        if (loss) *loss = l;
    }
    pthread_mutex_unlock(&m->lock);
    return st;
}
