"End-to-end checks of the `pneumonia-fastai` command, run as a user runs it: in a subprocess, with real files."
import json, os, shutil, subprocess, sys, hashlib
from pathlib import Path
import pytest

BIN = Path(sys.executable).parent/'pneumonia-fastai'
SHARED = Path(__file__).resolve().parents[2]/'shared'

def cli(*args, cwd=None):
    "Run the console script; return the completed process (text output)"
    env = {**os.environ, 'CI': 'true'}
    return subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=1200)

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

@pytest.mark.parametrize('args,needle', [
    (('assemble', '/nonexistent/src', '{tmp}/d'), 'does not exist'),
    (('assemble', '{tmp}', '{tmp}/inside'), 'inside the source'),
    (('train', '{tmp}', '--out', '{tmp}/o'), 'assemble'),
    (('evaluate', '{tmp}/model.pkl', '{tmp}', '--out', '{tmp}/o'), 'does not exist'),
    (('predict', '{tmp}/model.pkl', '{tmp}/x.jpeg'), 'does not exist'),
])
def test_expected_errors_exit_2_without_traceback(tmp_path, args, needle):
    (tmp_path/'NORMAL').mkdir()
    r = cli(*[a.format(tmp=tmp_path) for a in args])
    assert r.returncode==2, (r.returncode, r.stderr)
    assert needle in r.stderr and 'Traceback' not in r.stderr
    assert r.stderr.startswith(f'pneumonia-fastai {args[0]}: error:')

def test_help_for_every_command():
    for c in ('assemble','train','evaluate','predict','run','demo'):
        r = cli(c, '--help')
        assert r.returncode==0 and 'usage: pneumonia-fastai '+c in r.stdout

def test_demo_end_to_end_beats_chance(tmp_path):
    "The demo command on small phantoms: report files exist and the model beats chance on held-out patients"
    out = tmp_path/'demo'
    r = cli('demo', '--out', out)
    assert r.returncode==0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert sum(l.startswith('epoch ') for l in lines)==6, 'one line per epoch in a log'
    assert not any('\r' in l or '█' in l for l in lines), 'no progress bars in a log'
    assert f"Report: {out/'report'}" in r.stdout
    for f in ('confusion_matrix.png','roc_curve.png','training_curves.png','lr_find.png','top_losses.png'):
        assert (out/'report'/f).stat().st_size>5000, f
    m = json.loads((out/'report'/'metrics.json').read_text())
    assert {'n','accuracy','error_rate','sensitivity','specificity','precision','npv','f1','auc','threshold','confusion'}<=set(m)
    # the test split holds a third normal images: always answering PNEUMONIA scores 0.67 accuracy, 0.5 AUC
    assert m['n']>=80
    assert m['auc']>=0.9 and m['accuracy']>=0.85, m
    # the saved model predicts, one line per image, and reports a bad file without losing the rest
    imgs = sorted((out/'data'/'test').glob('*/*'))[:3]
    (tmp_path/'bad.jpeg').write_bytes(b'')
    p = cli('predict', out/'model.pkl', *imgs, tmp_path/'bad.jpeg')
    assert p.returncode==1
    assert len(p.stdout.splitlines())==3 and all(l.split(',')[1] in ('NORMAL','PNEUMONIA') for l in p.stdout.splitlines())
    assert 'bad.jpeg: empty file' in p.stderr
