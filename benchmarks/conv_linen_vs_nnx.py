"""A/B in one process: notebook 05's conv training step (a Python loop of jitted steps,
3,200 sprites, batch 64), the Linen engine of commit 5278f26 against the NNX engine.

    git worktree add /tmp/old 5278f26 && mkdir -p /tmp/ab && cp -r /tmp/old/vae_core /tmp/ab/vae_core_old
    python benchmarks/conv_linen_vs_nnx.py /tmp/ab

Epochs alternate (old, new, old, new, ...) after one compile epoch each, so both see the
same machine conditions; the ratio of medians is the answer.
"""
import sys, time, statistics
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
OLD = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ab"  # a folder holding the old engine as vae_core_old/
sys.path.insert(0, OLD)
sys.path.insert(0, str(ROOT))
import jax, jax.numpy as jnp
import vae_core_old.disentangle as odis, vae_core_old.models as om, vae_core_old.train as ot, vae_core_old.sprites as osp
from course import nb05_disentangle as ndis
from vae_core import models as nm, train as nt
from flax import nnx
x = jnp.asarray(osp.make_sprites(3200, size=32, seed=0).images)
def old_runner():
    cfg, tcfg = odis.sprite_model_config(32), odis.sprite_train_config(4.0, 0, 10)
    model, params = om.init_params(cfg, jax.random.PRNGKey(0), data_mean=jnp.mean(x, 0))
    tx = ot.make_optimizer(tcfg, 500); st = [params, tx.init(params), jnp.zeros((), jnp.int32)]
    run = ot.make_epoch_fn(model, tcfg, tx, len(x), loop="python")
    def epoch(k):
        st[0], st[1], st[2], m = run(st[0], st[1], st[2], x, jax.random.PRNGKey(k)); jax.block_until_ready(m)
    return epoch
def new_runner():
    cfg, tcfg = ndis.sprite_model_config(32), ndis.sprite_train_config(4.0, 0, 10)
    model = nm.build_model(cfg, jax.random.PRNGKey(0), data_mean=jnp.mean(x, 0))
    g, params = nnx.split(model)
    tx = nt.make_optimizer(tcfg, 50); st = [params, tx.init(params), jnp.zeros((), jnp.int32)]
    run = nt.make_epoch_fn(model, tcfg, tx, len(x), loop="python")
    def epoch(k):
        st[0], st[1], st[2], m = run(st[0], st[1], st[2], x, jax.random.PRNGKey(k)); jax.block_until_ready(m)
    return epoch
o, n = old_runner(), new_runner()
o(0); n(0)  # compile
to, tn = [], []
for k in range(1, 6):
    t = time.perf_counter(); o(k); to.append(time.perf_counter() - t)
    t = time.perf_counter(); n(k); tn.append(time.perf_counter() - t)
imgs = (3200 // 64) * 64
print("old (Linen) images/s per epoch:", [round(imgs / s) for s in to])
print("new (NNX)   images/s per epoch:", [round(imgs / s) for s in tn])
print(f"median: old {imgs / statistics.median(to):.0f}, new {imgs / statistics.median(tn):.0f}, new/old {statistics.median(to) / statistics.median(tn):.2f}; per-pair ratios {[round(a / b, 2) for a, b in zip(to, tn)]}")
