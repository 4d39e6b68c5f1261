"End-to-end checks of the `pneumonia-fastai` command with real files: run as a user runs it, in a subprocess, and `main` in this process where only its exit status and messages are checked (one of each such check also goes through the console script)."
import json, os, shutil, signal, subprocess, sys, time, hashlib
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent/'pneumonia-fastai'
SHARED = Path(__file__).resolve().parents[2]/'shared'

def cli(*args, cwd=None):
    "Run the console script; return the completed process (text output)"
    env = {**os.environ, 'CI': 'true'}
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=1200)

def run_main(capsys, monkeypatch, *args):
    "`main` in this process, as the console script calls it (CI set): exit status, stdout, stderr; spares the 4-5 s of a new interpreter"
    from pneumonia_fastai.cli import main
    monkeypatch.setenv('CI', 'true')
    try: code = main([str(a) for a in args])
    except SystemExit as e: code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err

def tree_digest(p):
    "Every path under `p` with the md5 of its bytes (links by target), to prove a source is left untouched"
    res = {}
    for f in sorted(Path(p).rglob('*')):
        k = f.relative_to(p).as_posix()
        res[k] = ('link:'+os.readlink(f)) if f.is_symlink() else hashlib.md5(f.read_bytes()).hexdigest() if f.is_file() else 'dir'
    return res

@pytest.fixture(scope='module')
def messy(tmp_path_factory):
    "A messy phantom Kaggle download: junk, bad files, a nested copy, repeated patients, odd formats"
    from pneumonia_fastai.phantom import make_phantoms, make_messy
    root = tmp_path_factory.mktemp('download')
    kaggle = make_phantoms(root, n_normal=60, n_pneumonia=120, size=128, seed=7)
    added = make_messy(kaggle, seed=7)
    return root, added

def test_assemble_messy_download(messy, tmp_path):
    root, added = messy
    before = tree_digest(root)
    r = cli('assemble', root, tmp_path/'data', '--seed', 3)
    assert r.returncode==0, r.stderr
    assert 'Assembled' in r.stdout and 'rejected:' in r.stdout
    assert tree_digest(root)==before, 'the source changed'
    import pandas as pd
    m = pd.read_csv(tmp_path/'data'/'manifest.csv')
    rej = pd.read_csv(tmp_path/'data'/'rejected.csv')
    assert m.groupby('patient').split.nunique().max()==1, 'a patient is in two splits'
    assert set(m.split)=={'train','valid','test'}
    for f in added['bad']: assert f in set(rej.source), f'{f} not reported'
    for f in added['odd']: assert f in set(m.source), f'{f} was not accepted'
    for copy,orig in added['duplicates']: assert (copy in set(rej.source)) != (orig in set(rej.source))
    placed = {p.relative_to(tmp_path/'data').as_posix() for p in (tmp_path/'data').glob('*/*/*')}
    assert placed==set(m.file)
    # same command again: nothing to do; different options: refused, data kept
    r2 = cli('assemble', root, tmp_path/'data', '--seed', 3)
    assert r2.returncode==0 and 'up to date' in r2.stdout
    r3 = cli('assemble', root, tmp_path/'data', '--seed', 4)
    assert r3.returncode==2 and '--force' in r3.stderr and 'Traceback' not in r3.stderr
    assert pd.read_csv(tmp_path/'data'/'manifest.csv').equals(m)

def test_assemble_read_only_source_copy(messy, tmp_path):
    root, _ = messy
    ro = tmp_path/'ro'
    shutil.copytree(root, ro, symlinks=True)
    for p in [ro, *ro.rglob('*')]: p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        before = tree_digest(ro)
        r = cli('assemble', ro, tmp_path/'data', '--link', 'copy', '--classes', '3', '--balance', 'undersample')
        assert r.returncode==0, r.stderr
        assert tree_digest(ro)==before
        import pandas as pd
        m = pd.read_csv(tmp_path/'data'/'manifest.csv')
        assert set(m.label)=={'NORMAL','BACTERIA','VIRUS'}
        assert m[m.split=='train'].label.value_counts().nunique()==1
        assert not any(p.is_symlink() for p in (tmp_path/'data').rglob('*'))
    finally:
        for p in [ro, *ro.rglob('*')]: p.chmod(0o755 if p.is_dir() else 0o644)

@pytest.mark.parametrize('args,needle,script', [
    (('assemble', '/nonexistent/src', '{tmp}/d'), 'does not exist', True),
    (('assemble', '{tmp}', '{tmp}/inside'), 'inside the source', False),
    (('train', '{tmp}', '--out', '{tmp}/o'), 'assemble', False),
    (('evaluate', '{tmp}/model.pth', '{tmp}', '--out', '{tmp}/o'), 'does not exist', False),
    (('predict', '{tmp}/model.pth', '{tmp}/x.jpeg'), 'does not exist', False),
    (('predict', '{tmp}', '{tmp}/x.jpeg'), 'holds no model.json', False),
    (('export', '{tmp}/model.pkl', '{tmp}/o'), '--trust-pickle', False),
    (('train', '{tmp}', '--out', '{tmp}/o', '--resume'), 'no checkpoint to resume from', False),
])
def test_expected_errors_exit_2_without_traceback(tmp_path, capsys, monkeypatch, args, needle, script):
    "Each expected error in `main`, in this process; with `script`, also through the console script, as a user meets it"
    (tmp_path/'NORMAL').mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    code,_,err = run_main(capsys, monkeypatch, *args)
    if script:
        r = cli(*args)
        assert (r.returncode,r.stderr)==(code,err), (r.returncode, r.stderr)
    assert code==2, (code, err)
    assert needle in err and 'Traceback' not in err
    assert err.startswith(f'pneumonia-fastai {args[0]}: error:')

def test_help_for_every_command(capsys, monkeypatch):
    cmds = ('assemble','train','evaluate','predict','export','run','demo')
    r = cli('--help')
    assert r.returncode==0 and all(c in r.stdout for c in cmds), r.stdout
    for c in cmds:
        code,out,_ = run_main(capsys, monkeypatch, c, '--help')
        assert code==0 and 'usage: pneumonia-fastai '+c in out, out

def test_demo_end_to_end_beats_chance(tmp_path):
    "The demo command on small phantoms: report files exist and the model beats chance on held-out patients"
    from pneumonia_fastai.train import demo_defaults
    out = tmp_path/'demo'
    r = cli('demo', '--out', out)
    assert r.returncode==0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert sum(l.startswith('epoch ') for l in lines)==demo_defaults['freeze_epochs']+demo_defaults['epochs'], 'one line per epoch in a log'
    assert not any('\r' in l or '█' in l for l in lines), 'no progress bars in a log'
    line = next(l for l in lines if l.startswith(f"Report: {out/'report'} ("))
    listed = line.split(' (',1)[1].rstrip(')').split(', ')
    assert listed[0]=='report.html' and all((out/'report'/f).is_file() for f in listed), line # it names what the run wrote, and only that
    assert {'metrics.json','confusion_matrix.png','roc_curve.png'}<=set(listed) and 'lr_find.png' not in listed, line # no lr_find ran by default
    for f in ('confusion_matrix.png','roc_curve.png','training_curves.png','top_losses.png'):
        assert (out/'report'/f).stat().st_size>5000, f
    m = json.loads((out/'report'/'metrics.json').read_text())
    assert {'n','accuracy','error_rate','sensitivity','specificity','precision','npv','f1','auc','threshold','confusion'}<=set(m)
    # the test split holds a third normal images: always answering PNEUMONIA scores 0.67 accuracy, 0.5 AUC
    assert m['n']>=80
    assert m['auc']>=0.9 and m['accuracy']>=0.85, m
    # the saved model predicts, one line per image, and reports a bad file without losing the rest
    imgs = sorted((out/'data'/'test').glob('*/*'))[:3]
    (tmp_path/'bad.jpeg').write_bytes(b'')
    for f in ('model.pth','model.json'): assert (out/f).exists(), f
    assert not (out/'model.pkl').exists() and not (out/'checkpoints').exists()
    p = cli('predict', out, *imgs, tmp_path/'bad.jpeg')
    assert p.returncode==1
    assert len(p.stdout.splitlines())==3 and all(l.split(',')[1] in ('NORMAL','PNEUMONIA') for l in p.stdout.splitlines())
    assert 'bad.jpeg: empty file' in p.stderr

def test_train_killed_then_resumed(tmp_path):
    "A training killed with SIGKILL after its second epoch resumes from the checkpoint and ends as a whole run: every epoch once, a model that beats chance"
    from pneumonia_fastai.phantom import make_phantoms
    from pneumonia_fastai.assemble import assemble
    import pandas as pd
    make_phantoms(tmp_path/'dl', n_normal=60, n_pneumonia=120, size=64, seed=5)
    assemble(tmp_path/'dl', tmp_path/'data', quiet=True)
    out, ck = tmp_path/'out', tmp_path/'out'/'checkpoints'/'checkpoint.json'
    args = ['train', tmp_path/'data', '--out', out, '--arch', 'resnet18', '--weights', 'none', '--size', '64', '--bs', '16',
            '--freeze-epochs', '1', '--epochs', '4', '--lr', '3e-3', '--target-sensitivity', '0', '--max-aspect', '1'] # phantoms from scratch: without `RandomAspect`, made for real films' shapes
    p = subprocess.Popen([str(BIN), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, 'CI':'true'})
    t0 = time.time()
    try:
        while time.time()-t0 < 600 and p.poll() is None:
            try:
                if json.loads(ck.read_text())['epochs_done']>=2: break
            except (FileNotFoundError, ValueError): pass
            time.sleep(0.1)
        p.send_signal(signal.SIGKILL)
    finally: p.wait()
    assert p.returncode==-signal.SIGKILL, 'the training ended before it could be killed'
    done = json.loads(ck.read_text())['epochs_done']
    assert 2<=done<5 and not (out/'model.pth').exists()
    # training again without --resume, or resuming with other options, is refused and changes nothing
    r = cli(*args)
    assert r.returncode==2 and f'unfinished training ({done} of 5 epochs done)' in r.stderr and '--resume' in r.stderr, r.stderr
    r = cli(*[a if a!='4' else '3' for a in args], '--resume')
    assert r.returncode==2 and "stages={'unfrozen': 5} (now {'unfrozen': 4})" in r.stderr and 'Traceback' not in r.stderr, r.stderr
    r = cli(*args[:-1], '1.2', '--resume') # another stretch (`--max-aspect`) is another training too
    assert r.returncode==2 and 'max_aspect=1.0 (now 1.2)' in r.stderr, r.stderr
    assert json.loads(ck.read_text())['epochs_done']==done
    r = cli(*args, '--resume')
    assert r.returncode==0, r.stderr[-3000:]
    assert r.stdout.startswith('resuming resnet18')
    assert sum(l.startswith('epoch ') for l in r.stdout.splitlines())==5-done, 'only the missing epochs are trained'
    h = pd.read_csv(out/'history.csv')
    assert list(h.epoch)==[0,1,2,3,4] and h.best.sum()==1
    m = json.loads((out/'valid'/'metrics.json').read_text())
    # a third of the validation images are normal: always answering PNEUMONIA scores 0.5 AUC
    assert m['auc']>0.8, m
    assert not (out/'checkpoints').exists()
    r = cli(*args, '--resume')
    assert r.returncode==2 and 'no checkpoint to resume from' in r.stderr
