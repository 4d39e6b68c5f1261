"""`assemble` as a process: killed half-way (SIGKILL) it leaves no half-built data set and the next run recovers;
the same seed gives the same manifest byte for byte on any machine (hash seed, file order, absolute path, threads)."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
from pneumonia_fastai.phantom import make_phantoms, make_messy, make_coronahack

SCRIPT = 'import sys, json; from pneumonia_fastai.assemble import assemble; assemble(sys.argv[1], sys.argv[2], quiet=True, **json.loads(sys.argv[3]))'

def start(src, dest, hashseed='0', nice=0, **kw):
    "A subprocess running `assemble(src, dest, **kw)`"
    env = dict(os.environ, PYTHONHASHSEED=str(hashseed), PYTHONWARNINGS='ignore')
    return subprocess.Popen([sys.executable, '-c', SCRIPT, str(src), str(dest), json.dumps(kw)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)

def finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode==0, err[-3000:]

def work_dirs(dest): return sorted(dest.parent.glob(f'.{dest.name}.*'))

def n_files(d): return sum(len(fs) for _,_,fs in os.walk(d))

def kill_half_way(p, dest, min_files, timeout=240):
    "SIGKILL `p` once its temp folder beside `dest` holds `min_files` files; the folder left behind"
    t0 = time.monotonic()
    while time.monotonic()-t0 < timeout:
        tmps = [d for d in work_dirs(dest) if '.tmp-' in d.name and d.name.endswith(f'-{p.pid}')]
        if tmps and n_files(tmps[0])>=min_files:
            p.send_signal(signal.SIGKILL); p.wait()
            return tmps[0]
        if p.poll() is not None: pytest.fail(f'the assembly ended (rc {p.returncode}) before it could be killed half-way: {p.stderr.read()[-2000:]}')
        time.sleep(0.002)
    p.kill(); pytest.fail('the assembly never reached its half-way point')

@pytest.fixture(scope='module')
def download(tmp_path_factory):
    d = tmp_path_factory.mktemp('dl')
    make_phantoms(d, n_normal=150, n_pneumonia=300, size=160, seed=0)
    return d

def test_killed_assembly_leaves_nothing_half_built(download, tmp_path):
    opts = dict(size=64, n_workers=1, seed=0)
    ref = tmp_path/'ref'; finish(start(download, ref, **opts))
    n = len((ref/'manifest.csv').read_text().splitlines())-1
    dest = tmp_path/'data'
    left = kill_half_way(start(download, dest, nice=15, **opts), dest, min_files=n//4)
    assert not dest.exists(), 'a killed run must not leave a destination'
    assert left.exists() and 0 < n_files(left) < n+3
    # the next run does not trust the leftover, removes it, and gives what an uninterrupted run gives
    finish(start(download, dest, **opts))
    assert work_dirs(dest)==[]
    assert (dest/'manifest.csv').read_bytes()==(ref/'manifest.csv').read_bytes()
    assert sorted(p.relative_to(dest) for p in dest.rglob('*.jpeg'))==sorted(p.relative_to(ref) for p in ref.rglob('*.jpeg'))

def test_killed_replacement_keeps_the_previous_assembly(download, tmp_path):
    dest = tmp_path/'data'
    finish(start(download, dest, size=64, n_workers=1, seed=0))
    before = {p.relative_to(dest): p.read_bytes() for p in dest.rglob('*') if p.is_file()}
    left = kill_half_way(start(download, dest, nice=15, size=64, n_workers=1, seed=1, force=True), dest, min_files=100)
    assert left.exists()
    assert {p.relative_to(dest): p.read_bytes() for p in dest.rglob('*') if p.is_file()}==before, 'the previous assembly must stay whole'
    finish(start(download, dest, size=64, n_workers=1, seed=1, force=True))
    assert work_dirs(dest)==[]
    assert json.loads((dest/'assembly.json').read_text())['seed']==1

def copy_reversed(src, dst):
    "Copy the tree `src` to `dst`, creating the files in reverse order"
    for f in sorted((p for p in Path(src).rglob('*') if p.is_file()), reverse=True):
        t = dst/f.relative_to(src); t.parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, t)

def same_everywhere(src_a, src_b, tmp_path, **kw):
    "Assemble `src_a` and `src_b` in two processes that differ in hash seed and threads; the two destinations"
    a, b = tmp_path/'out_a'/'data', tmp_path/'elsewhere'/'deeper'/'out_b'
    pa = start(src_a, a, hashseed=1, n_workers=1, **kw); pb = start(src_b, b, hashseed=4242, n_workers=2, **kw)
    finish(pa); finish(pb)
    for f in ('manifest.csv', 'rejected.csv'):
        assert (a/f).read_bytes()==(b/f).read_bytes(), f
    text = (a/'manifest.csv').read_text()+(a/'rejected.csv').read_text()
    assert str(tmp_path) not in text and '/tmp' not in text, 'the manifest must hold no absolute paths'
    return a, b

def test_same_seed_same_manifest_on_any_machine(tmp_path):
    make_messy(make_phantoms(tmp_path/'a', n_normal=40, n_pneumonia=80, size=48, seed=3))
    copy_reversed(tmp_path/'a', tmp_path/'b'/'other'/'place')
    kw = dict(seed=7, classes=3, balance='undersample', official_test=False)
    a, _ = same_everywhere(tmp_path/'a', tmp_path/'b'/'other'/'place', tmp_path, **kw)
    # and the test can fail: another seed gives another manifest
    c = tmp_path/'c'; finish(start(tmp_path/'a', c, **dict(kw, seed=8)))
    assert (c/'manifest.csv').read_bytes()!=(a/'manifest.csv').read_bytes()

def test_same_seed_same_manifest_from_a_csv(tmp_path):
    make_coronahack(tmp_path/'a', n_normal=20, n_pneumonia=40, size=40, seed=1)
    copy_reversed(tmp_path/'a', tmp_path/'b')
    pa = tmp_path/'a'/'Chest_xray_Corona_Metadata.csv'
    a, b = tmp_path/'out_a', tmp_path/'x'/'out_b'
    p1 = start(tmp_path/'a', a, hashseed=1, n_workers=1, seed=3, classes=3, csv=str(pa))
    p2 = start(tmp_path/'b', b, hashseed=99, n_workers=2, seed=3, classes=3, csv=str(tmp_path/'b'/'Chest_xray_Corona_Metadata.csv'))
    finish(p1); finish(p2)
    for f in ('manifest.csv', 'rejected.csv'): assert (a/f).read_bytes()==(b/f).read_bytes(), f
    assert str(tmp_path) not in (a/'manifest.csv').read_text()
