"README.md is generated from nbs/index.ipynb (`make readme`); this keeps them from drifting apart."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_matches_index_notebook(tmp_path):
    jupyter = Path(sys.executable).parent/'jupyter'
    subprocess.run([str(jupyter), 'nbconvert', '--to', 'markdown', '--log-level', 'WARN', '--output-dir', str(tmp_path),
                    '--output', 'README', str(ROOT/'nbs'/'index.ipynb')], check=True)
    assert (tmp_path/'README.md').read_text()==(ROOT/'README.md').read_text(), 'README.md is stale: run `make readme`'

def test_ci_runs_the_readme_test_command():
    readme, ci = (ROOT/'README.md').read_text(), (ROOT/'.ci'/'run').read_text()
    assert 'make test' in readme and ci.strip().splitlines()[-1]=='make test'
