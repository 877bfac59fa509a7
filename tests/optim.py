#!/usr/bin/python3
"""
Optimizers, schedules and gradient clipping (src/train/optim.c, schedule.c)
against PyTorch 1.13: torch.optim.SGD/Adam/AdamW with parameter groups (per
group lr, weight_decay 0 for the no-decay ranges, a group frozen by leaving
its grads None), OneCycleLR / MultiStepLR / LambdaLR / SequentialLR /
ExponentialLR, and torch.nn.utils.clip_grad_norm_. Also, bit for bit:
thread-count independence, checkpoint-resume, and the portable loops
(RN_CPU=generic) against the AVX2 kernels; and rejection of bad configs. The C side is tests/optim_driver.c.

    /usr/bin/python3 tests/optim.py [BUILD_DIR]

Prints one line per comparison and last "N passed, M failed"; exits non-zero
if anything failed.
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
DRIVER = os.path.join(BUILD, "optim_driver")
TMP = tempfile.mkdtemp(prefix="rn_optim_")
PARAM_TOL = 1e-6   # relative 2-norm error of the parameters and of the optimizer state
CHANGE_TOL = 1e-5  # relative 2-norm error of the change p - p0: a one-ulp flip of one parameter is ~1e-6 of it
LR_TOL = 1e-12     # relative error of a learning rate / momentum
counts = {"pass": 0, "fail": 0}


def check(ok, label, detail=""):
    """Records one comparison and prints it."""
    counts["pass" if ok else "fail"] += 1
    print("%s %s %s" % ("ok  " if ok else "FAIL", label, detail))


def driver(*args, threads=None, cpu=None):
    """Runs optim_driver with args (OMP_NUM_THREADS=threads, RN_CPU=cpu when given); returns its stdout."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if cpu:
        env["RN_CPU"] = cpu
    r = subprocess.run([DRIVER] + [str(a) for a in args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("optim_driver %s failed: %s" % (args, r.stderr))
    return r.stdout


# ---- cases -------------------------------------------------------------

def make_case(name, optim, sched, n=1000, steps=50, groups=(1.0,), ranges=None, frozen=None, clip=0.0,
              seed=0, grad_scale=1.0, **kw):
    """A test case: optimizer settings, schedule, parameter layout, data."""
    if ranges is None:  # a few tensors over two groups, every other one without decay, one gap
        ranges = [(0, 300, 0, 1), (300, 7, 0, 0), (320, 333, len(groups) - 1, 1), (653, 347, len(groups) - 1, 0)]
    c = dict(name=name, optim=optim, sched=sched, n=n, steps=steps, groups=list(groups), ranges=ranges,
             frozen=frozen or {}, clip=clip, seed=seed, grad_scale=grad_scale,
             wd=0.0, nesterov=0, beta2=0.99, eps=1e-5, lr=0.01, total=steps, pct_start=0.25, div=25.0,
             final_div=1e5, mom=(0.95, 0.85), warmup=0, gamma=0.1, milestones=[], lr_end=10.0, resume=-1)
    c.update(kw)
    return c


def write_spec(c, path):
    """Writes the driver's spec file for case c ("sched" first: it resets the defaults)."""
    lines = ["sched %s" % c["sched"], "optim %s" % c["optim"], "wd %r" % c["wd"], "nesterov %d" % c["nesterov"],
             "beta2 %r" % c["beta2"], "eps %r" % c["eps"], "lr %r" % c["lr"], "total %d" % c["total"],
             "pct_start %r" % c["pct_start"], "div %r" % c["div"], "final_div %r" % c["final_div"],
             "mom %r %r" % c["mom"], "warmup %d" % c["warmup"], "gamma %r" % c["gamma"],
             "milestones %d %s" % (len(c["milestones"]), " ".join(map(str, c["milestones"]))),
             "lr_end %r" % c["lr_end"], "n %d" % c["n"], "steps %d" % c["steps"], "clip %r" % c["clip"],
             "resume %d" % c["resume"], "groups %d %s" % (len(c["groups"]), " ".join(map(repr, c["groups"])))]
    lines += ["frozen %d %d" % (g, k) for g, k in c["frozen"].items()]
    lines += ["range %d %d %d %d" % r for r in c["ranges"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def case_data(c):
    """Initial parameters (n) and gradients (steps, n), float32, from the case's seed."""
    rng = np.random.default_rng(c["seed"])
    p0 = rng.standard_normal(c["n"]).astype(np.float32)
    g = (rng.standard_normal((c["steps"], c["n"])) * c["grad_scale"]).astype(np.float32)
    return p0, g


def run_c(c, p0, grads, threads=None, tag="", cpu=None):
    """Runs the case through the driver; returns params, state dict, steps, log (steps, groups+2)."""
    spec, inp, out = (os.path.join(TMP, c["name"] + tag + s) for s in (".spec", ".in", ".out"))
    write_spec(c, spec)
    with open(inp, "wb") as f:
        f.write(p0.tobytes())
        f.write(grads.tobytes())
    driver("run", spec, inp, out, threads=threads, cpu=cpu)
    raw = open(out, "rb").read()
    n, nr, ng = c["n"], len(c["ranges"]), len(c["groups"])
    names = ["momentum_buffer"] if c["optim"] == "sgd" else ["exp_avg", "exp_avg_sq"]
    at = 0
    p = np.frombuffer(raw, np.float32, n, at)
    at += 4 * n
    state = {}
    for name in names:
        state[name] = np.frombuffer(raw, np.float32, n, at)
        at += 4 * n
    steps = np.frombuffer(raw, np.int64, nr, at)
    at += 8 * nr
    log = np.frombuffer(raw, np.float64, c["steps"] * (ng + 2), at).reshape(c["steps"], ng + 2)
    return p, state, steps, log, raw


def torch_scheduler(c, opt, mults):
    """The torch scheduler for case c over opt's groups (group lr multipliers mults)."""
    lr, total = c["lr"], c["total"]
    if c["sched"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[lr * m for m in mults], total_steps=total, pct_start=c["pct_start"],
            anneal_strategy="cos", cycle_momentum=True, base_momentum=c["mom"][1], max_momentum=c["mom"][0],
            div_factor=c["div"], final_div_factor=c["final_div"], three_phase=False)
    if c["sched"] == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=c["milestones"], gamma=c["gamma"])
    if c["sched"] == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_factor(c, s))
    if c["sched"] == "exp":
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=(c["lr_end"] / lr) ** (1 / total))
    return None


def cosine_factor(c, s):
    """The cosine schedule's LambdaLR factor as documented in schedule.h (div/final_div 0 = from/to 0)."""
    a = 1 / c["div"] if c["div"] > 0 else 0.0
    m = 1 / c["final_div"] if c["final_div"] > 0 else 0.0
    w, t = c["warmup"], c["total"]
    if s < w:
        return a + (1 - a) * s / w
    if s < t:
        return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * (s - w) / (t - w)))
    return m


def run_torch(c, p0, grads):
    """Runs case c with torch.optim; returns params (flat, gaps kept), state, steps, log."""
    ranges, mults = c["ranges"], c["groups"]
    tensors = [torch.tensor(p0[o:o + l].copy()) for o, l, _, _ in ranges]
    keys = sorted({(g, d) for _, _, g, d in ranges})  # one torch group per (group, decay)
    tgroups = [{"params": [t for t, r in zip(tensors, ranges) if (r[2], r[3]) == k],
                "lr": c["lr"] * mults[k[0]], "weight_decay": c["wd"] if k[1] else 0.0} for k in keys]
    mom0 = c["mom"][0]
    if c["optim"] == "sgd":
        opt = torch.optim.SGD(tgroups, lr=c["lr"], momentum=mom0, nesterov=bool(c["nesterov"]))
    else:
        cls = torch.optim.Adam if c["optim"] == "adam" else torch.optim.AdamW
        opt = cls(tgroups, lr=c["lr"], betas=(mom0, c["beta2"]), eps=c["eps"])
    sched = torch_scheduler(c, opt, [mults[k[0]] for k in keys])
    log = np.zeros((c["steps"], len(mults) + 2))
    for s in range(c["steps"]):
        for gi, k in enumerate(keys):
            grp = opt.param_groups[gi]
            log[s, k[0]] = grp["lr"]
            log[s, len(mults)] = grp["momentum"] if c["optim"] == "sgd" else grp["betas"][0]
        live = []
        for t, (o, l, g, _) in zip(tensors, ranges):
            t.grad = None if s < c["frozen"].get(g, 0) else torch.tensor(grads[s, o:o + l].copy())
            if t.grad is not None:
                live.append(t)
        if c["clip"] > 0:
            log[s, len(mults) + 1] = float(torch.nn.utils.clip_grad_norm_(live, c["clip"]))
        opt.step()
        if sched is not None:
            sched.step()
    p = p0.copy()
    state = {}
    names = ["momentum_buffer"] if c["optim"] == "sgd" else ["exp_avg", "exp_avg_sq"]
    for name in names:
        state[name] = np.zeros(c["n"], np.float32)
    steps = []
    for t, (o, l, g, _) in zip(tensors, ranges):
        p[o:o + l] = t.detach().numpy()
        st = opt.state.get(t, {})
        for name in names:
            if st.get(name) is not None:
                state[name][o:o + l] = st[name].numpy()
        if c["optim"] == "sgd":  # torch keeps no count: steps that used momentum, 0 iff the buffer is None
            k = sum(1 for s in range(c["steps"]) if s >= c["frozen"].get(g, 0) and log[s, len(mults)] != 0)
            steps.append(k if (k > 0) == (st.get("momentum_buffer") is not None) else -1)
        else:
            steps.append(int(st["step"]) if "step" in st else 0)
    return p, state, np.array(steps), log


def rel(a, b):
    """Relative 2-norm error of a against reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / (nb if nb > 0 else 1.0)


def compare_case(c):
    """Runs case c in C and torch and checks params, state, step counts, lr and momentum."""
    p0, grads = case_data(c)
    pc, sc, stc, logc, _ = run_c(c, p0, grads)
    pt, st, stt, logt = run_torch(c, p0, grads)
    name = c["name"]
    e, ed = rel(pc, pt), rel(pc - p0, pt - p0)
    same = int(np.sum(pc.view(np.uint32) == pt.view(np.uint32)))
    check(e <= PARAM_TOL and ed <= CHANGE_TOL, name + " params",
          "rel %.2e, rel of change %.2e, %d/%d bit-identical" % (e, ed, same, c["n"]))
    for k in sc:
        ek = rel(sc[k], st[k])
        check(ek <= PARAM_TOL, name + " state " + k, "rel %.2e" % ek)
    check(np.array_equal(stc, stt), name + " step counts", "%s vs torch %s" % (list(stc), list(stt)))
    ng = len(c["groups"])
    lr_err = np.max(np.abs(logc[:, :ng] - logt[:, :ng]) / np.maximum(np.abs(logt[:, :ng]), 1e-300))
    mom_err = np.max(np.abs(logc[:, ng] - logt[:, ng]) / np.maximum(np.abs(logt[:, ng]), 1e-300))
    check(lr_err <= LR_TOL and mom_err <= LR_TOL, name + " lr/momentum per step",
          "max rel %.1e / %.1e" % (lr_err, mom_err))
    if c["clip"] > 0:
        en = np.max(np.abs(logc[:, ng + 1] - logt[:, ng + 1]) / logt[:, ng + 1])
        check(en <= PARAM_TOL, name + " clip norms", "max rel %.1e" % en)


FASTAI_ADAM = dict(beta2=0.99, eps=1e-5)


def optimizer_cases():
    """The optimizer x schedule matrix."""
    return [
        make_case("sgd_plain_const", "sgd", "constant", mom=(0.0, 0.0), lr=0.05),
        make_case("sgd_momentum_wd_step", "sgd", "step", mom=(0.9, 0.9), wd=5e-4, lr=0.1, milestones=[15, 30, 30]),
        make_case("sgd_nesterov_wd_onecycle", "sgd", "onecycle", nesterov=1, wd=5e-4, lr=0.1, groups=(0.1, 1.0)),
        make_case("sgd_momentum_cosine_frozen", "sgd", "cosine", mom=(0.9, 0.9), wd=1e-4, lr=0.1, warmup=5,
                  groups=(0.01, 0.1, 1.0), frozen={0: 12},
                  ranges=[(0, 200, 0, 1), (200, 50, 0, 0), (250, 300, 1, 1), (550, 50, 1, 0), (600, 400, 2, 1)]),
        make_case("sgd_clip_onecycle", "sgd", "onecycle", wd=5e-4, lr=0.1, clip=20.0),
        make_case("adam_onecycle", "adam", "onecycle", lr=3e-3, **FASTAI_ADAM),
        make_case("adam_wd_step", "adam", "step", mom=(0.9, 0.9), wd=0.01, lr=1e-3, milestones=[20, 40],
                  beta2=0.999, eps=1e-8),
        make_case("adamw_fastai_onecycle_frozen", "adamw", "onecycle", wd=0.01, lr=3e-3, groups=(0.01, 0.1, 1.0),
                  frozen={0: 20, 1: 20},
                  ranges=[(0, 200, 0, 1), (200, 50, 0, 0), (250, 300, 1, 1), (550, 50, 1, 0), (600, 400, 2, 1),
                          (1000, 10, 2, 0)], n=1010, **FASTAI_ADAM),
        make_case("adamw_cosine_clip", "adamw", "cosine", wd=0.01, lr=1e-3, warmup=10, mom=(0.9, 0.9), clip=25.0,
                  div=25.0, final_div=100.0, **FASTAI_ADAM),
        make_case("adamw_exp_finder", "adamw", "exp", wd=0.01, lr=1e-7, lr_end=10.0, mom=(0.9, 0.9), **FASTAI_ADAM),
        make_case("adamw_large", "adamw", "onecycle", wd=0.01, lr=3e-3, n=300000, steps=20, groups=(0.1, 1.0),
                  ranges=[(0, 150000, 0, 1), (150000, 77, 0, 0), (150077, 149923, 1, 1)], frozen={0: 5},
                  **FASTAI_ADAM),
    ]


def test_optimizers():
    """Every case of the matrix against torch."""
    for c in optimizer_cases():
        compare_case(c)


def test_threads_and_resume():
    """Bitwise: 1 vs 2 threads on a case big enough to run in parallel; resumed vs straight runs."""
    big = [c for c in optimizer_cases() if c["name"] == "adamw_large"][0]
    p0, grads = case_data(big)
    one = run_c(big, p0, grads, threads=1, tag=".t1")[4]
    two = run_c(big, p0, grads, threads=2, tag=".t2")[4]
    check(one == two, "adamw_large 1 vs 2 threads bit-identical")
    sgd = make_case("sgd_nesterov_big", "sgd", "onecycle", nesterov=1, wd=5e-4, lr=0.1, n=200000, steps=6,
                    ranges=[(0, 200000, 0, 1)], clip=50.0, grad_scale=0.5)
    p0s, gs = case_data(sgd)
    check(run_c(sgd, p0s, gs, threads=1, tag=".t1")[4] == run_c(sgd, p0s, gs, threads=2, tag=".t2")[4],
          "sgd_nesterov_big (with clipping) 1 vs 2 threads bit-identical")
    for c in optimizer_cases():  # the portable loops (RN_CPU=generic) against the vector kernels
        if c["name"] in ("sgd_nesterov_wd_onecycle", "adamw_fastai_onecycle_frozen", "adam_wd_step"):
            p0, grads = case_data(c)
            check(run_c(c, p0, grads, tag=".vec")[4] == run_c(c, p0, grads, tag=".generic", cpu="generic")[4],
                  "%s portable loops (RN_CPU=generic) bit-identical to the vector kernels" % c["name"])
    for c in optimizer_cases():
        if c["name"] in ("adamw_fastai_onecycle_frozen", "sgd_momentum_cosine_frozen"):
            p0, grads = case_data(c)
            straight = run_c(c, p0, grads, tag=".straight")[4]
            for k in (1, 17, 33):
                c2 = dict(c, resume=k)
                check(run_c(c2, p0, grads, tag=".resume%d" % k)[4] == straight,
                      "%s resumed at step %d bit-identical" % (c["name"], k))


# ---- schedules alone ------------------------------------------------------

def c_schedule(c):
    """lr and mom of steps 0..total from the driver."""
    spec, out = os.path.join(TMP, c["name"] + ".spec"), os.path.join(TMP, c["name"] + ".sched")
    write_spec(c, spec)
    driver("sched", spec, out)
    return np.fromfile(out, np.float64).reshape(-1, 2)


def torch_schedule(c, make, upto):
    """lr and momentum (or 0) of a torch scheduler over one SGD group for steps 0..upto-1."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c["lr"], momentum=c["mom"][0])
    sched = make(opt)
    out = []
    for i in range(upto):
        out.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        if i + 1 < upto:
            opt.step()
            sched.step()
    return np.array(out)


def sched_compare(label, got, want, tol, scale=None):
    """Checks |got - want| <= tol * (scale or |want|) elementwise."""
    s = np.abs(want) if scale is None else scale
    err = np.max(np.abs(got - want) / np.maximum(s, 1e-300))
    check(err <= tol, label, "max rel %.1e over %d steps" % (err, len(want)))


def test_schedules():
    """Each schedule kind against its torch scheduler, step by step."""
    import warnings
    warnings.filterwarnings("ignore")
    for total, pct in ((100, 0.25), (37, 0.3), (1000, 0.25), (10, 0.25), (7, 0.5)):
        c = make_case("onecycle_%d" % total, "sgd", "onecycle", total=total, pct_start=pct, lr=0.4)
        got = c_schedule(c)
        want = torch_schedule(c, lambda o: torch_scheduler(c, o, [1.0]), total + 1)
        exact = np.array_equal(got, want)
        sched_compare("OneCycleLR total %d pct %.2f lr" % (total, pct), got[:, 0], want[:, 0], LR_TOL)
        sched_compare("OneCycleLR total %d pct %.2f momentum%s" % (total, pct, " (all identical)" if exact else ""),
                      got[:, 1], want[:, 1], LR_TOL)
    c = make_case("multistep", "sgd", "step", total=60, milestones=[0, 10, 25, 25, 40], gamma=0.3, mom=(0.9, 0.9))
    got = c_schedule(c)
    want = torch_schedule(c, lambda o: torch_scheduler(c, o, [1.0]), 61)
    sched_compare("MultiStepLR milestones 0,10,25,25,40 lr (bit-identical %s)" % np.array_equal(got[:, 0], want[:, 0]),
                  got[:, 0], want[:, 0], LR_TOL)
    sched_compare("MultiStepLR constant momentum", got[:, 1], want[:, 1], 0)
    for warm, div, fdiv in ((10, 25.0, 100.0), (0, 0.0, 0.0), (5, 0.0, 1e4)):
        c = make_case("cos%d" % warm, "sgd", "cosine", total=80, warmup=warm, div=div, final_div=fdiv, lr=0.2)
        got = c_schedule(c)
        want = torch_schedule(c, lambda o: torch_scheduler(c, o, [1.0]), 81)
        sched_compare("cosine warmup %d div %g final %g vs LambdaLR" % (warm, div, fdiv), got[:, 0], want[:, 0], LR_TOL)
        a = 1 / div if div > 0 else None
        eta_min = c["lr"] / fdiv if fdiv > 0 else 0.0
        if a is not None and warm > 0:
            def seq(o, warm=warm, a=a, eta_min=eta_min):
                lin = torch.optim.lr_scheduler.LinearLR(o, start_factor=a, end_factor=1.0, total_iters=warm)
                cos = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=80 - warm, eta_min=eta_min)
                return torch.optim.lr_scheduler.SequentialLR(o, [lin, cos], milestones=[warm])
            want2 = torch_schedule(c, seq, 81)
            sched_compare("cosine warmup %d vs SequentialLR(LinearLR, CosineAnnealingLR)" % warm,
                          got[:, 0], want2[:, 0], LR_TOL, scale=c["lr"])
        elif warm == 0:
            want2 = torch_schedule(c, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=80, eta_min=eta_min),
                                   81)
            sched_compare("cosine without warm-up vs CosineAnnealingLR", got[:, 0], want2[:, 0], LR_TOL, scale=c["lr"])
    c = make_case("exp", "sgd", "exp", total=100, lr=1e-7, lr_end=10.0, mom=(0.9, 0.9))
    got = c_schedule(c)
    want = torch_schedule(c, lambda o: torch_scheduler(c, o, [1.0]), 101)
    sched_compare("lr finder sweep vs ExponentialLR", got[:, 0], want[:, 0], LR_TOL)
    check(got[0, 0] == 1e-7 and abs(got[100, 0] - 10.0) <= 1e-12 * 10, "lr finder sweep ends",
          "%.17g .. %.17g" % (got[0, 0], got[100, 0]))
    c = make_case("const", "sgd", "constant", total=5, lr=0.03, mom=(0.9, 0.9))
    got = c_schedule(c)
    check(np.all(got[:, 0] == 0.03) and np.all(got[:, 1] == 0.9), "constant lr and momentum")


def even_mults(start, stop, n):
    """fastai.torch_core.even_mults, verbatim."""
    if n == 1:
        return stop
    mult = stop / start
    step = mult ** (1 / (n - 1))
    return np.array([start * (step ** i) for i in range(n)])


def test_even_mults():
    """rn_even_mults against fastai's even_mults."""
    for lo, hi, n in ((1e-5, 1e-3, 3), (1e-6, 1e-2, 5), (0.5, 0.5, 4), (1e-4, 1e-3, 1)):
        got = np.array([float(x) for x in driver("mults", repr(lo), repr(hi), n).split()])
        want = np.atleast_1d(even_mults(lo, hi, n))
        check(np.array_equal(got, want), "even_mults(%g, %g, %d)" % (lo, hi, n), str(list(got)))


def test_clip():
    """rn_clip_grad_norm against torch.nn.utils.clip_grad_norm_ over several tensors."""
    rng = np.random.default_rng(7)
    sizes = [1000, 37, 50000, 3, 120000]
    g = rng.standard_normal(sum(sizes)).astype(np.float32)
    inp = os.path.join(TMP, "clip.in")
    g.tofile(inp)
    for max_norm in (1.0, 300.0, 1e6):
        out = os.path.join(TMP, "clip.out")
        driver("clip", inp, len(g), repr(max_norm), out)
        raw = open(out, "rb").read()
        norm_c = np.frombuffer(raw, np.float64, 1)[0]
        gc = np.frombuffer(raw, np.float32, len(g), 8)
        ts, at = [], 0
        for s in sizes:
            t = torch.zeros(s, requires_grad=True)
            t.grad = torch.tensor(g[at:at + s].copy())
            ts.append(t)
            at += s
        norm_t = float(torch.nn.utils.clip_grad_norm_(ts, max_norm))
        gt = np.concatenate([t.grad.numpy() for t in ts])
        en, eg = abs(norm_c - norm_t) / norm_t, rel(gc, gt)
        unchanged = max_norm > norm_t
        check(en <= PARAM_TOL and eg <= PARAM_TOL and (not unchanged or np.array_equal(gc, g)),
              "clip_grad_norm_ max_norm %g" % max_norm,
              "norm %.9g vs %.9g (rel %.1e), grads rel %.1e%s" % (norm_c, norm_t, en, eg,
                                                                   ", untouched" if unchanged else ""))


def test_errors():
    """Bad configurations are rejected with RN_ERR_ARG and a message; good ones accepted."""
    for line in driver("errors").splitlines():
        label, verdict = line.split()[:2]
        want = "accepted" if label.startswith("good") else "rejected"
        ok = verdict == want and (want == "accepted" or (line.split()[2] == "1" and len(line.split()) > 4))
        check(ok, "config " + label, line[len(label) + 1:])


def main():
    torch.set_num_threads(1)
    for t in (test_schedules, test_even_mults, test_optimizers, test_threads_and_resume, test_clip, test_errors):
        try:
            t()
        except Exception as e:  # a crash is a failure, not a silent stop
            check(False, t.__name__, "raised %r" % e)
    print("%d passed, %d failed" % (counts["pass"], counts["fail"]))
    sys.exit(1 if counts["fail"] else 0)


if __name__ == "__main__":
    main()
