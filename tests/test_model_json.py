"""A stranger's model.json is untrusted input. Whatever it holds, `check_model_info` accepts it or names the field that is wrong, and
`pneumonia-fastai predict` with it predicts or prints one error line naming the file (exit 2): no traceback, no file written, no memory blow-up."""
import atexit, contextlib, io, json, resource, shutil, tempfile
from pathlib import Path
from unittest import mock
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from pneumonia_fastai.core import XrayError
from pneumonia_fastai.share import check_model_info
from pneumonia_fastai.cli import main

BASE = Path(tempfile.mkdtemp(prefix='model_json_'))
SANDBOX, ABS = BASE/'a'/'sandbox', BASE/'abs'/'x'   # the temporary folder of the runs below, and an absolute path a class may name
ESCAPES = [BASE/'a'/'escaped', BASE/'escaped']      # where '../../escaped' and '../../../escaped' lead from a folder in SANDBOX ('../escaped' stays in it)
SANDBOX.mkdir(parents=True)
atexit.register(shutil.rmtree, BASE, True)

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    "An untrained ResNet-18 saved as `pneumonia-fastai train` saves it, with a training history and lr_find curves: its folder, model.json and an X-ray"
    from pneumonia_fastai.phantom import make_phantoms
    from pneumonia_fastai.dataloaders import xray_dls
    from pneumonia_fastai.learner import xray_learner
    from pneumonia_fastai.share import save_xray_model
    tmp = tmp_path_factory.mktemp('model')
    src = make_phantoms(tmp/'dl', n_normal=8, n_pneumonia=8, size=48, seed=0)
    learn = xray_learner(xray_dls(src, size=32, bs=4, valid='val'), 'resnet18', weights=None, seed=0)
    info = json.loads((save_xray_model(learn, tmp/'model')).read_text())
    info.update(history=[dict(phase='frozen', epoch=0, train_loss=0.7, valid_loss=0.6, error_rate=0.3, sensitivity=0.9, specificity=0.5, seconds=2.0, best=True)],
                lr_finds={'frozen': dict(lrs=[1e-5, 1e-3, 1e-1], losses=[0.7, 0.5, 2.0], lr=1e-3)}, temperature=1.2,
                normalize=dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))
    return tmp/'model', check_model_info(info), next(src.rglob('*.jpeg'))

paths = st.sampled_from(['../escaped', '../../escaped', '../../../escaped', str(ABS), 'a/b', 'a\\b', '..', '.', '', ' ', '.hidden', 'x'*300, 'NORMAL\x00', 'NORMAL'])
nums = st.one_of(st.integers(), st.floats(), st.sampled_from([0, 1, -1, 3, 15, 16, 1024, 1025, 10**9, 2**63, 1e300, 7.5, 0.5, -0.0]))
leaf = st.one_of(st.none(), st.booleans(), nums, st.text(max_size=12), paths)
junk = st.recursive(leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)

def mutate_inside(draw, o):
    "Replace, drop or add one thing somewhere inside the list or dict `o`, in place"
    while True:
        ks = list(o) if isinstance(o, dict) else list(range(len(o)))
        k = draw(st.sampled_from(ks)) if ks else None
        if k is not None and isinstance(o[k], (dict, list)) and draw(st.booleans()): o = o[k]; continue
        act = draw(st.sampled_from(['replace', 'drop', 'add'])) if ks else 'add'
        if act=='replace': o[k] = draw(junk)
        elif act=='drop': del o[k]
        elif isinstance(o, dict): o[draw(st.text(max_size=8))] = draw(junk)
        else: o.append(draw(junk))
        return

# values close to valid ones, so that some tampered descriptions are valid and load
near = dict(arch=st.sampled_from(['resnet18', 'mobilenet_v2', 'resnet1000', 'fasterrcnn_resnet50_fpn', 'RESNET18']),
            vocab=st.lists(st.sampled_from(['NORMAL', 'PNEUMONIA', 'normal', 'VIRUS', 'Virus (COVID-19)', '../x', 'a/b', '']), max_size=4),
            size=st.integers(0, 1100), n_in=st.integers(0, 4), gray=st.booleans(), threshold=st.floats(-0.5, 1.5), target_sensitivity=st.none() | st.floats(-0.5, 1.5),
            temperature=st.floats(-1, 200), tta=st.booleans() | st.integers(0, 1) | st.none(), normalize=st.none() | st.fixed_dictionaries(dict(mean=st.lists(st.floats(-2, 2), max_size=4), std=st.lists(st.floats(-1, 2), max_size=4))))

@st.composite
def tampered(draw, info):
    "(the field changed, a copy of `info` with one change at or inside that field): dropped, replaced by junk or a near value, changed inside, or a new field"
    info = json.loads(json.dumps(info))
    key = draw(st.sampled_from(sorted(info)+['new']))
    if key=='new': key = draw(st.text(max_size=10).filter(lambda k: k not in info))
    how = draw(st.sampled_from(['drop', 'replace', 'inside', 'near', 'near']))
    if how=='drop': info.pop(key, None)
    elif how=='near' and key in near: info[key] = draw(near[key])
    elif how=='inside' and isinstance(info.get(key), (dict, list)): mutate_inside(draw, info[key])
    else: info[key] = draw(junk)
    return key, info

def names_the_field(msg, key, fname):
    "Is `msg` one line naming `fname` and the field `key` (or saying the file is no model description)?"
    return ('\n' not in msg and msg.startswith(str(fname)) and
            (msg.startswith(f'{fname}: {key}') or 'unknown field' in msg or 'not a pneumonia-fastai model description' in msg))

@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_check_model_info_accepts_or_names_the_field(model, data):
    _, info, _ = model
    key, bad = data.draw(tampered(info))
    try: res = check_model_info(bad, 'M/model.json')
    except XrayError as e:
        event('refused')
        assert names_the_field(str(e), key, 'M/model.json'), (key, str(e))
    else:
        event('accepted')
        assert res is bad

def predict(folder, img):
    "Exit status, stdout and stderr of `pneumonia-fastai predict folder img`, run in-process with its temporary files in SANDBOX"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), mock.patch.object(tempfile, 'tempdir', str(SANDBOX)):
        rc = main(['predict', str(folder), str(img)])
    return rc, out.getvalue(), err.getvalue()

def check_cli(model, tmp, key, info):
    "`predict` with `info` as model.json beside the genuine model.pth: a prediction, or check_model_info's message; nothing written, memory bounded"
    folder, _, img = model
    (tmp/'m').mkdir(exist_ok=True)
    (tmp/'m'/'model.pth').write_bytes((folder/'model.pth').read_bytes())
    (tmp/'m'/'model.json').write_text(json.dumps(info))
    mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rc, out, err = predict(tmp/'m', img)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-mem < 2**20, 'more than 1 GB of memory'   # ru_maxrss is in kB
    assert rc in (0, 2) and 'Traceback' not in err, (rc, err)
    try: check_model_info(info, tmp/'m'/'model.json')
    except XrayError as e: assert (rc, err)==(2, f'pneumonia-fastai predict: error: {e}\n'), err
    if rc==2: assert err.count('\n')==1 and err.startswith('pneumonia-fastai predict: error: ') and 'model.' in err, err
    else: assert len(out.splitlines())==1 and out.startswith(str(img)), out
    assert sorted(p.name for p in (tmp/'m').iterdir())==['model.json', 'model.pth'], 'the model folder changed'
    assert not any(SANDBOX.iterdir()) and not ABS.exists() and not any(p.exists() for p in ESCAPES), 'a file was written'
    return rc

@pytest.mark.parametrize('key,value', [('vocab', ['../escaped', 'NORMAL']), ('vocab', ['../../escaped', 'NORMAL']), ('vocab', ['NORMAL', '../../../escaped']), ('vocab', [str(ABS), 'NORMAL']),
    ('vocab', ['NORMAL', 'a/b']), ('size', 10**9), ('size', -8), ('threshold', 7.5), ('threshold', float('nan')), ('threshold', '0.5'),
    ('normalize', dict(mean=[0.5], std=[0.2])), ('normalize', dict(mean=[0.5]*3, std=[0, 0, 0])), ('history', [[1, 2]]), ('history', [{'phase': None}]),
    ('lr_finds', {'fit': {'lrs': 'x'}}), ('arch', 'fasterrcnn_resnet50_fpn'), ('arch', None), ('sha256', None), ('temperature', float('inf')),
    ('arch', 'mobilenet_v2'), ('vocab', ['NORMAL', 'Viral pneumonia (COVID-19)']), ('threshold', 0.9), ('temperature', 2.0), ('normalize', None)])
def test_tampered_model_json_through_the_cli(model, tmp_path, key, value):
    check_cli(model, tmp_path, key, {**model[1], key: value})

@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_model_json_through_the_cli(model, tmp_path_factory, data):
    key, info = data.draw(tampered(model[1]))
    event(f"exit {check_cli(model, tmp_path_factory.mktemp('run'), key, info)}")
