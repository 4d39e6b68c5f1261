"Property-based tests of the file-name parsers and the patient-level splitter: they must hold for any input, not just ours."
import re
import pandas as pd
from hypothesis import assume, example, given, settings, strategies as st
from pneumonia_fastai.scan import patient_id, pneumonia_type
from pneumonia_fastai.assemble import split_by_patient

num = st.integers(min_value=0, max_value=99999)
kermany = st.one_of(
    st.builds(lambda n,k,t: (f'person{n}_{t}_{k}.jpeg', f'person{n}'), num, num, st.sampled_from(['bacteria','virus'])),
    st.builds(lambda n,k: (f'IM-{n:04d}-{k:04d}.jpeg', f'IM-{n:04d}'), num, num),
    st.builds(lambda n,k: (f'NORMAL2-IM-{n:04d}-{k:04d}.jpeg', f'NORMAL2-IM-{n:04d}'), num, num))

@given(kermany)
def test_patient_id_of_kermany_names(name_pid):
    name, pid = name_pid
    assert patient_id(name)==pid
    assert patient_id('some/folder/'+name)==pid

@given(st.text(alphabet=st.characters(blacklist_characters='/.\x00', blacklist_categories=('Cs',)), min_size=1, max_size=30))
def test_other_names_are_their_own_patient(stem):
    assume(not re.match(r'(person\d+_|NORMAL2-IM-\d+-|IM-\d+-)', stem, flags=re.IGNORECASE))
    assert patient_id(stem+'.png')==stem

@given(kermany)
def test_pneumonia_type(name_pid):
    name, _ = name_pid
    t = pneumonia_type(name)
    assert t==('BACTERIA' if 'bacteria' in name else 'VIRUS' if 'virus' in name else None)

rows = st.lists(st.tuples(st.integers(0, 40), st.sampled_from(['NORMAL','PNEUMONIA','VIRUS']),
                          st.sampled_from(['', 'train', 'valid', 'test'])), min_size=1, max_size=120)
pcts = st.tuples(st.floats(0, 0.45), st.floats(0, 0.45))

@settings(max_examples=150, deadline=None)
@given(rows, pcts, st.integers(0, 2**31-1), st.booleans())
def test_every_file_in_one_split_and_no_patient_in_two(rs, pct, seed, official):
    df = pd.DataFrame(rs, columns=['patient','label','official']).astype({'patient': str})
    s = split_by_patient(df, valid_pct=pct[0], test_pct=pct[1], seed=seed, official_test=official)
    assert len(s)==len(df) and s.index.equals(df.index)
    assert s.isin(['train','valid','test','leak']).all()
    kept = df.assign(split=s)[s!='leak']
    assert kept.groupby('patient').split.nunique().max()==1, 'a patient is in two splits'
    if official and (df.official=='test').any():
        assert (s[df.official=='test']=='test').all(), 'the official test split is kept whole'
        assert set(df.patient[s=='leak']) <= set(df.patient[df.official=='test'])
    else: assert (s!='leak').all()
    assert s.tolist()==split_by_patient(df, valid_pct=pct[0], test_pct=pct[1], seed=seed, official_test=official).tolist()

# --- path safety of metadata CSVs: whatever the file name, nothing outside the image root is ever accepted
import atexit, os, shutil, tempfile
from pathlib import Path
from pneumonia_fastai.scan import safe_source

def _root():
    "An image root with files, and symlinks of files and folders that lead out of it and that stay inside"
    d = Path(tempfile.mkdtemp()); root, out = d/'root', d/'outside'
    for p in (root/'train'/'in', out/'sub'): p.mkdir(parents=True)
    for f in (root/'a.jpeg', root/'train'/'b.jpeg', root/'train'/'in'/'c.jpeg', out/'secret.jpeg', out/'sub'/'s.jpeg', d/'root2.jpeg'):
        f.write_bytes(b'x')
    os.symlink(out/'secret.jpeg', root/'train'/'out.jpeg'); os.symlink(out, root/'outdir'); os.symlink(out/'sub', root/'train'/'subdir')
    os.symlink(root/'a.jpeg', root/'train'/'inlink.jpeg'); os.symlink(root/'train', root/'indir'); os.symlink(d, root/'up')
    os.symlink(root/'loop', root/'loop')
    atexit.register(shutil.rmtree, d, True)
    return root
ROOT = _root()

@st.composite
def walks(draw):
    "A file name made by walking the real tree from the root: any entry (links followed), '.' or '..', at each step"
    cur, parts, top = str(ROOT), [], os.path.realpath(ROOT.parent)
    for _ in range(draw(st.integers(1, 6))):
        # entries are listed only inside our sandbox: above it (the shared temp folder) they change while the test runs, and hypothesis needs the same draws every time
        inside = os.path.isdir(cur) and os.path.commonpath([top, os.path.realpath(cur)])==top
        opts = ['..', '.'] + (sorted(os.listdir(cur)) if inside else [])
        parts.append(draw(st.sampled_from(opts))); cur = os.path.join(cur, parts[-1])
    lead = draw(st.sampled_from(['', '', '', './', '/', str(ROOT)+'/', str(ROOT.parent)+'/']))
    return lead + draw(st.sampled_from(['/', '/', '\\'])).join(parts)

@settings(max_examples=400, deadline=None)
@given(st.one_of(walks(), st.text(max_size=40)))
@example('train/out.jpeg')
@example('outdir/secret.jpeg')
@example('up/outside/secret.jpeg')
@example('train/subdir/s.jpeg')
@example('../outside/secret.jpeg')
@example(str(ROOT.parent/'outside'/'secret.jpeg'))
@example('indir/../../root2.jpeg')
def test_safe_source_never_leaves_the_root(name):
    rel, reason = safe_source(ROOT, name)
    assert (rel is None) != (reason is None)
    if rel is None: return
    top, real = os.path.realpath(ROOT), os.path.realpath(ROOT/rel)
    assert os.path.commonpath([top, real])==top, (name, real)
    assert not os.path.isabs(rel) and '..' not in Path(rel).parts and os.path.isfile(real)

@settings(max_examples=200, deadline=None)
@given(walks())
def test_safe_source_accepts_the_files_inside(name):
    "The check is not just a refusal: a relative name without '..' that stays inside the root is accepted"
    n = name.replace('\\', '/')
    real = os.path.realpath(os.path.join(ROOT, n.lstrip('/')))
    inside = os.path.commonpath([os.path.realpath(ROOT), real])==os.path.realpath(ROOT)
    if not n.startswith('/') and '..' not in n.split('/') and inside and os.path.isfile(real):
        assert safe_source(ROOT, name)[0] is not None, name

# --- choose_threshold: the highest threshold that reaches the sensitivity, whatever the scores (ties, runs of one class)
import numpy as np
from pneumonia_fastai.metrics import choose_threshold, diagnostic_metrics

@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=2, max_size=60), st.floats(0, 1))
def test_choose_threshold_is_the_highest_that_reaches_the_sensitivity(rows, target):
    "Scores on a coarse grid make ties and long runs of one class, where sklearn's `drop_intermediate` would lose thresholds"
    s, y = np.array([r[0]/20 for r in rows]), np.array([int(r[1]) for r in rows])
    assume(0 < y.sum() < len(y))
    p, vocab = np.stack([1-s, s], 1), ['NORMAL','PNEUMONIA']
    sens = lambda t: diagnostic_metrics(p, y, vocab, threshold=t)['sensitivity']
    t = choose_threshold(p, y, vocab, sensitivity=target)
    assert sens(t) >= target
    assert not [u for u in 1-p[:,0] if u > t and sens(u) >= target], 'a higher threshold reaches the sensitivity'
