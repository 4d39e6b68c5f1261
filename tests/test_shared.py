"Tests on the real data in ../shared, and that a missing ../shared fails them under `make test` (CI) and skips them under a bare `pytest`."
import hashlib, os, subprocess, sys
from pathlib import Path
import torchvision

ROOT = Path(__file__).resolve().parents[1]
MNV2 = 'mobilenet_v2-imagenet-int8dq.pth'

def test_shared_weights_load_into_mobilenet_v2(shared):
    "The ImageNet MobileNetV2 weights the notebooks' `shared` tests train from: the file shared/README.md describes, and they fit"
    from pneumonia_fastai.learner import load_state
    f = shared('weights', MNV2)
    assert hashlib.sha256(f.read_bytes()).hexdigest()=='b9aaff526745b87be8faffabb7f4222d622b2fbb7cfe955795c29d61e4d1b185'
    load_state(f, torchvision.models.mobilenet_v2(weights=None))

def run_without_shared(tmp_path, require):
    "pytest of the test above with ../shared pointed at a folder that does not exist, as `make test` runs it (`require`) or not"
    env = {k:v for k,v in os.environ.items() if k!='PNEUMONIA_FASTAI_REQUIRE_SHARED'}
    env['PNEUMONIA_FASTAI_SHARED'] = str(tmp_path/'no_shared')
    if require: env['PNEUMONIA_FASTAI_REQUIRE_SHARED'] = '1'
    return subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-rs', f'{__file__}::test_shared_weights_load_into_mobilenet_v2'],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

def test_missing_shared_fails_under_make_test(tmp_path):
    r = run_without_shared(tmp_path, require=True)
    assert r.returncode==1 and '1 failed' in r.stdout, r.stdout[-2000:]
    assert f"{tmp_path/'no_shared'/'weights'/MNV2} is missing" in r.stdout and 'beside the project' in r.stdout, r.stdout[-2000:]

def test_missing_shared_skips_under_bare_pytest(tmp_path):
    r = run_without_shared(tmp_path, require=False)
    assert r.returncode==0 and '1 skipped' in r.stdout, r.stdout[-2000:]
    assert 'SKIPPED' in r.stdout and f"{MNV2} is missing" in r.stdout, r.stdout[-2000:]

def test_make_test_requires_shared_and_test_fast_says_what_it_skips():
    lines = subprocess.run(['make', '-n', 'test', 'test-fast'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    assert any(l.startswith('PNEUMONIA_FASTAI_REQUIRE_SHARED=1 ') and l.endswith('-m pytest tests/') for l in lines), lines
    assert any('nbdev-test --flags "slow shared"' in l for l in lines), lines
    assert any(l.startswith('echo') and 'skipped the notebook cells flagged "slow shared"' in l for l in lines), lines
