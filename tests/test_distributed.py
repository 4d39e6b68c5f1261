"`pneumonia-fastai train` under `accelerate launch` with two CPU processes (gloo): both finish, agree, and only rank 0 writes."
import os, re, subprocess, sys
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent

# Installed in every process through `sitecustomize`: an audit hook that logs, per rank, each file operation under $WATCH
# (Python-level opens for writing, renames, new folders, removals), so the test sees who wrote what.
HOOK = '''
import os, sys
watch, log = os.environ.get('WATCH'), os.environ.get('WRITES_LOG')
if watch and log:
    def _hook(event, args, _w=watch, _log=log):
        if event=='open': path,mode = args[0],args[1]; keep = isinstance(path,(str,bytes,os.PathLike)) and mode and any(c in str(mode) for c in 'wax+')
        elif event=='os.mkdir': path = args[0]; keep = not os.path.exists(path) # `mkdir(exist_ok=True)` of an existing folder writes nothing
        elif event in ('os.rename','os.remove','shutil.rmtree'): path,keep = args[0],True
        else: return
        if keep and str(os.fspath(path) if not isinstance(path,int) else '').startswith(_w) and not str(path).startswith(_log):
            with open(f"{_log}.{os.environ.get('RANK','-')}", 'a') as f: f.write(f'{event} {os.fspath(path)}\\n')
    sys.addaudithook(_hook)
'''

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from pneumonia_fastai.phantom import make_phantoms
    from pneumonia_fastai.assemble import assemble
    root = tmp_path_factory.mktemp('ddp')
    make_phantoms(root/'dl', n_normal=30, n_pneumonia=60, size=64, seed=0)
    assemble(root/'dl', root/'data', quiet=True)
    return root

def test_train_under_accelerate_launch_two_cpu_processes(data, tmp_path):
    import torch
    site = tmp_path/'site'; site.mkdir()
    (site/'sitecustomize.py').write_text(HOOK)
    torch.save(__import__('torchvision').models.resnet18(weights=None).state_dict(), tmp_path/'r18.pth')
    out = tmp_path/'out'
    env = {**os.environ, 'CI':'true', 'OMP_NUM_THREADS':'1', 'PYTHONPATH':f"{site}{os.pathsep}{os.environ.get('PYTHONPATH','')}",
           'WATCH':str(out), 'WRITES_LOG':str(tmp_path/'writes')}
    # on GPUs: accelerate launch --multi_gpu --num_processes N (or `accelerate config` once); without GPUs the same command runs CPU processes
    cmd = [str(BIN/'accelerate'), 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', '--main_process_port', '29533', '-m', 'pneumonia_fastai.cli', 'train', str(data/'data'), '--out', str(out),
           '--arch', 'resnet18', '--weights', str(tmp_path/'r18.pth'), '--size', '32', '--bs', '8', '--freeze-epochs', '1', '--epochs', '1', '--lr-find']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode==0, r.stderr[-3000:]
    # one log: epoch lines and lr_find from rank 0 only
    assert sum(l.startswith('epoch ') for l in r.stdout.splitlines())==2, r.stdout
    assert sum(l.startswith('lr_find [') for l in r.stdout.splitlines())==1, r.stdout # --lr-find: one lr_find, in rank 0; the unfrozen stage takes half its rate
    # both ranks finished, with the same validation metrics, threshold and weights
    ranks = dict(re.findall(r'^rank (\d): (.*)$', r.stdout, re.M))
    assert set(ranks)=={'0','1'}, r.stdout
    assert ranks['0']==ranks['1'], ranks
    assert 'weights ' in ranks['0'] and 'threshold ' in ranks['0']
    # each result written once, by rank 0; rank 1 wrote nothing at all under out/
    w0 = (tmp_path/'writes.0').read_text().splitlines()
    assert not (tmp_path/'writes.1').exists(), (tmp_path/'writes.1').read_text()
    renamed = [Path(l.split(' ',1)[1]).name for l in w0 if l.startswith('os.rename')]
    for f in ('model.pth.tmp','model.json.tmp'): assert renamed.count(f)==1, (f, renamed)
    opened = [Path(l.split(' ',1)[1]).relative_to(out).as_posix() for l in w0 if l.startswith('open')]
    for f in ('history.csv','config.json','training_curves.png','lr_find.png','valid/metrics.json','model.json.tmp'):
        assert opened.count(f)==1, (f, opened)
    for f in ('model.pth','model.json','history.csv','valid/metrics.json'): assert (out/f).exists(), f
    assert not (out/'checkpoints').exists()
    # the saved model is the one the processes agreed on
    from pneumonia_fastai.share import load_xray_learner
    from pneumonia_fastai.train import _digest
    learn = load_xray_learner(out, cpu=True)
    assert f'weights {_digest(learn.model)}' in ranks['0']
