"""Training and inference throughput of stock fastai, this library's defaults and a raw PyTorch loop, on the same X-rays.

    .venv/bin/python bench/bench.py                 # throughput table (a few minutes)
    .venv/bin/python bench/bench.py --train         # plus the default `pneumonia-fastai train` on the whole data
    .venv/bin/python bench/bench.py --levers        # plus (b) with DataLoader workers, without channels-last, compiled

Prints figures only; nothing here asserts a speed. Each configuration runs in its own process so that its peak
memory is its own. Data: ../shared/data/chest_xray/train when present (assembled by patient into OUT/data), else phantoms.
"""
import argparse, json, os, resource, subprocess, sys, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/'shared'

def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024

def timed_fit(learn, n_warm, n_batches):
    "Images per second of `learn`'s training loop (data loading included) over `n_batches` after `n_warm`"
    from fastai.callback.core import Callback, CancelFitException
    class Timer(Callback):
        order = 99
        def before_batch(self):
            if self.iter==n_warm: self.t0 = time.perf_counter()
        def after_batch(self):
            if self.iter==n_warm+n_batches-1:
                self.dt = time.perf_counter()-self.t0
                raise CancelFitException()
    t = Timer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=t)
    return n_batches*learn.dls.train.bs/t.dt

def timed_preds(learn, files):
    "Images per second of `get_preds` over `files` (decoding included)"
    dl = learn.dls.test_dl(files)
    with learn.no_bar(): learn.get_preds(dl=learn.dls.test_dl(files[:learn.dls.train.bs]))
    t = time.perf_counter()
    with learn.no_bar(): learn.get_preds(dl=dl)
    return len(files)/(time.perf_counter()-t)

def one(cfg, data, n_warm, n_batches, n_infer):
    "Measure one configuration: 'a' stock fastai, 'b' library defaults, 'c' raw PyTorch on pre-decoded tensors; 'b' + a lever: 'bw1'/'bw2' DataLoader workers, 'bnocl' no channels-last, 'bcompile' `torch.compile`"
    import torch
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, resnet18, error_rate, get_image_files, set_seed
    from pneumonia_fastai.all import xray_dls, xray_learner, train_defaults, default_weights, set_speedups, speedups
    set_seed(0)
    files = get_image_files(data/'valid')[:n_infer]
    if cfg=='a':
        dls = ImageDataLoaders.from_folder(data, train='train', valid='valid', item_tfms=Resize(224), bs=64)
        learn = vision_learner(dls, resnet18, pretrained=False, metrics=error_rate)
        desc = 'stock fastai: resnet18, 224px, bs 64, fp32, default workers'
    else:
        d,lever = train_defaults(),cfg[1:]
        dls = xray_dls(data, size=d['size'], bs=d['bs'], num_workers=int(lever[1:]) if lever.startswith('w') else None)
        learn = xray_learner(dls, d['arch'], weights=default_weights(d['arch']), bars=False)
        if lever=='nocl': set_speedups(learn, False).add_cbs([c for c in speedups() if type(c).__name__!='ChannelsLast'])
        if lever=='compile': learn.model.compile() # in place, so that fastai can still split the model into body and head
        learn.unfreeze()
        desc = f"{d['arch']}, {d['size']}px, bs {d['bs']}, {dls.train.fake_l.num_workers} workers, " + ('+'.join(type(c).__name__ for c in learn.cbs if type(c).__name__ in ('ChannelsLast','CPUMixedPrecision','MixedPrecision')) or 'fp32') + (', torch.compile (first batches compile)' if lever=='compile' else '')
    extra = {}
    if cfg[0] in 'ab':
        train = timed_fit(learn, n_warm, n_batches)
        infer = timed_preds(learn, files)
        if cfg=='b': # what a prediction costs with the default test-time augmentation (`xray_preds` over `tta_views`)
            learn.xray_run.use_tta = True
            dl = learn.dls.test_dl(files)
            with learn.no_bar(): learn.xray_preds(learn.dls.test_dl(files[:learn.dls.train.bs]))
            t = time.perf_counter()
            with learn.no_bar(): learn.xray_preds(dl)
            extra['infer_tta_img_s'] = round(len(files)/(time.perf_counter()-t), 1)
    else:
        # the ceiling: the same model and precision on one batch already decoded, augmented and on the device
        xb,yb = (o.as_subclass(torch.Tensor) for o in learn.dls.one_batch())   # plain tensors: no fastai types in the loop
        learn.create_opt()   # fastai's own Adam, as (b) uses, so only the loop and the data pipeline differ
        model,opt,loss_func = learn.model.train(),learn.opt,learn.loss_func
        opt.set_hyper('lr', 1e-4)
        cl = any(type(c).__name__=='ChannelsLast' for c in learn.cbs)
        bf16 = any(type(c).__name__=='CPUMixedPrecision' for c in learn.cbs)
        if cl: model,xb = model.to(memory_format=torch.channels_last),xb.contiguous(memory_format=torch.channels_last)
        def step(train=True):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                out = model(xb)
                loss = loss_func(out.float(), yb)
            if train: loss.backward(); opt.step(); opt.zero_grad()
        for _ in range(n_warm): step()
        t = time.perf_counter()
        for _ in range(n_batches): step()
        train = n_batches*len(xb)/(time.perf_counter()-t)
        model.eval()
        with torch.no_grad():
            step(False); t = time.perf_counter()
            for _ in range(max(1, n_infer//len(xb))): step(False)
            infer = max(1, n_infer//len(xb))*len(xb)/(time.perf_counter()-t)
        desc = 'raw PyTorch loop: same model, precision and optimizer as (b), one pre-decoded batch'
    return dict(cfg=cfg, desc=desc, train_img_s=round(train, 1), infer_img_s=round(infer, 1), peak_mb=round(peak_mb()), **extra)

def stock_accuracy(data, out):
    "Train stock fastai the way users do (resnet18 from scratch, fit_one_cycle(3), 224 px) and score it like the library"
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner, resnet18, error_rate, get_image_files, set_seed
    from pneumonia_fastai.all import diagnostic_metrics
    set_seed(0)
    dls = ImageDataLoaders.from_folder(data, train='train', valid='valid', item_tfms=Resize(224), bs=64)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=error_rate, path=out)
    t = time.perf_counter()
    with learn.no_bar(): learn.fit_one_cycle(3)
    mins = (time.perf_counter()-t)/60
    res = {}
    for split in ('valid','test'):
        with learn.no_bar(): p,y = learn.get_preds(dl=dls.test_dl(get_image_files(data/split), with_labels=True))
        res[split] = diagnostic_metrics(p, y, dls.vocab)
    return mins, res

def get_data(out):
    from pneumonia_fastai.all import assemble, make_phantoms
    src = SHARED/'data'/'chest_xray'/'train'
    if not src.exists():
        print(f'{src} is absent: benchmarking on phantoms instead')
        src = make_phantoms(out/'phantoms', n_normal=300, n_pneumonia=600, size=512)
    assemble(src, out/'data', quiet=True)
    return out/'data', src

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(ROOT/'bench_out'), help='working folder (default %(default)s)')
    p.add_argument('--n-batches', type=int, default=30, help='timed training batches per configuration (fewer give noisy figures)')
    p.add_argument('--n-warm', type=int, default=5, help='untimed batches first')
    p.add_argument('--n-infer', type=int, default=512, help='validation images for inference throughput')
    p.add_argument('--train', action='store_true', help='also time the default `pneumonia-fastai train` on the whole data')
    p.add_argument('--stock', action='store_true', help='also train stock fastai (resnet18 from scratch, fit_one_cycle(3)) for its accuracy')
    p.add_argument('--levers', action='store_true', help='also measure (b) with 1 and 2 DataLoader workers, without channels-last, and with torch.compile')
    p.add_argument('--skip-throughput', action='store_true', help='skip the throughput table')
    p.add_argument('--one', help=argparse.SUPPRESS)
    p.add_argument('--data', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one: return print(json.dumps(one(a.one, Path(a.data), a.n_warm, a.n_batches, a.n_infer)))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    data,src = get_data(out)
    import torch
    from pneumonia_fastai.callbacks import cpu_isa
    from pneumonia_fastai.learner import tta_views
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'
    print(f"data: {data} ({src}); torch {torch.__version__}, {os.cpu_count()} CPUs: {cpu_isa()}; GPU: {gpu}")
    fmt = lambda m: ', '.join(f"{k} {m[k]:.3f}" for k in ('accuracy','sensitivity','specificity','auc')) + f" at threshold {m['threshold']:.3f} (n={m['n']})"
    if a.stock:
        mins,res = stock_accuracy(data, out/'stock')
        print(f"stock fastai, {mins:.1f} min of training; validation: {fmt(res['valid'])}; test: {fmt(res['test'])}", flush=True)
    if a.skip_throughput and not (a.train or a.levers): return
    rows = {}
    for cfg in ([] if a.skip_throughput else ['a','b','c']) + (['bw1','bw2','bnocl','bcompile'] if a.levers else []):
        r = subprocess.run([sys.executable, __file__, '--one', cfg, '--data', str(data), '--n-batches', str(a.n_batches),
                            '--n-warm', str(a.n_warm), '--n-infer', str(a.n_infer)], capture_output=True, text=True)
        if r.returncode: sys.exit(f'configuration {cfg} failed:\n{r.stderr[-3000:]}')
        rows[cfg] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"({cfg}) {rows[cfg]['desc']}: train {rows[cfg]['train_img_s']} img/s, inference {rows[cfg]['infer_img_s']} img/s, peak {rows[cfg]['peak_mb']} MB", flush=True)
    if {'a','b','c'}<=set(rows):
        a_,b_,c_ = rows['a'],rows['b'],rows['c']
        print('\n| configuration | train img/s | inference img/s | peak memory MB |\n|---|---|---|---|')
        for k in 'abc': print(f"| ({k}) {rows[k]['desc']} | {rows[k]['train_img_s']} | {rows[k]['infer_img_s']} | {rows[k]['peak_mb']} |")
        print(f"| b/a | {b_['train_img_s']/a_['train_img_s']:.2f} | {b_['infer_img_s']/a_['infer_img_s']:.2f} | |")
        print(f"| b/c | {b_['train_img_s']/c_['train_img_s']:.2f} | {b_['infer_img_s']/c_['infer_img_s']:.2f} | |")
        print(f"(b) inference with the default test-time augmentation ({len(tta_views())} views): {b_['infer_tta_img_s']} img/s")
    if a.levers:
        print('\n| (b) with a lever | train img/s | inference img/s | peak memory MB |\n|---|---|---|---|')
        for k in [k for k in rows if len(k)>1]: print(f"| {rows[k]['desc']} | {rows[k]['train_img_s']} | {rows[k]['infer_img_s']} | {rows[k]['peak_mb']} |")
    if a.train:
        t = time.perf_counter()
        r = subprocess.run([str(Path(sys.executable).parent/'pneumonia-fastai'), 'train', str(data), '--out', str(out/'train')],
                           env={**os.environ, 'CI': 'true'})
        wall = time.perf_counter()-t
        if r.returncode: sys.exit('default train failed')
        m = json.loads((out/'train'/'valid'/'metrics.json').read_text())
        print(f"\ndefault `pneumonia-fastai train` on {data}: {wall/60:.1f} min wall; validation: {fmt(m)}")

if __name__=='__main__': main()
