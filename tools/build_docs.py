"""Build the documentation site from the notebooks without Quarto: `python tools/build_docs.py` (or `make docs`).

nbdev 3 renders its docs only through Quarto. This script keeps nbdev's half of the work and swaps Quarto for MkDocs:
1. every `nbs/*.ipynb` goes through nbdev's own doc processors (`nbdev.processors.FilterDefaults`: frontmatter,
   a `show_doc` for every exported function and class with its signature and docments, backticked names linked
   to their pages, hidden and exported cells dropped), except that only the cells `show_doc` needs are run:
   exported cells, cells of nothing but imports, and `show_doc` calls. nbdev's own `exec_show_docs` also runs
   every cell that has an import in it, and here many test cells start with one (10_app's launches the app and
   fails without the cells before it): tests and training are never run here;
2. each processed notebook becomes one Markdown page (its `output-file`, the name `nbdev-docs` gives it; the README
   notebook `index.ipynb` becomes the home page; images in outputs and attachments are written beside it);
3. MkDocs (`mkdocs.yml`) renders the pages into `docs/`, with a sidebar of every page in notebook order.
`nbdev-docs` still works where Quarto is installed: nothing here writes a `_quarto.yml` or touches `_proc/`; the one
nbdev setting added to pyproject.toml, `strip_libs`, makes nbdev's name links work in both builds.
"""
import argparse, ast, base64, os, re, shutil, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_EXTS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}
_MIME_EXT = {'image/png': '.png', 'image/jpeg': '.jpg', 'image/gif': '.gif', 'image/svg+xml': '.svg', 'image/webp': '.webp'}

def slugify(value, separator='-'):
    "Heading ids as nbdev's links expect them (`#xray_dls`, `#pilxray`, `#graytorgb.encodes`): lower case, `_.-` kept"
    value = re.sub(r'[^\w\s.-]', '', value.strip().lower())
    return re.sub(r'\s+', separator, value)

def _safe_procs():
    "nbdev's doc processors, with `exec_show_docs` running only what `show_doc` needs"
    from nbdev.processors import FilterDefaults, exec_show_docs, _show_docs, cell_lang
    _needed = {'export', 'exports', 'exporti', 'exec_doc'}

    def needed(cell):
        "An exported cell, a cell of only imports, or a cell of only `show_doc` calls: never a test"
        if cell.cell_type != 'code' or not cell.source or cell_lang(cell) != 'python': return False
        if cell.directives_.get('eval', '').lower() == 'false': return False
        if cell.directives_.keys() & _needed: return True
        trees = cell.parsed_()
        if not trees: return False
        shown = _show_docs(trees)
        return all(isinstance(t, (ast.Import, ast.ImportFrom)) or t in shown for t in trees)

    class exec_needed(exec_show_docs):
        def __call__(self, cell):
            if not self.nb.has_docs_ or not hasattr(self, 'k') or not needed(cell): return
            self.k.cell(cell)
            if (e := self.k.exc):
                raise RuntimeError(f'{self.nb.path_}: cell {cell.idx_} failed while rendering docs:\n{cell.source}\n{type(e).__name__}: {e}') from e

    class DocFilter(FilterDefaults):
        def base_procs(self): return [exec_needed if p is exec_show_docs else p for p in super().base_procs()]
    return DocFilter()

def _frontmatter(nb):
    import yaml
    c = nb.cells[0] if nb.cells else None
    if c is None or c.cell_type != 'raw' or not c.source.lstrip().startswith('---'): return {}
    nb.cells.pop(0)
    return yaml.safe_load(c.source.strip().strip('-')) or {}

def _directives(src): return dict(re.findall(r'^#\|\s*([\w-]+):?[ \t]*(.*)$', src, re.M))

def _fence(text, lang=''):
    ticks = '````' if '```' in text else '```'
    return f'{ticks}{lang}\n{text.rstrip()}\n{ticks}'

class _Page:
    "One processed notebook written as a Markdown page `stem.md`, its images in `stem_files/`"
    def __init__(self, rel:Path, out, links):
        self.rel,self.stem,self.out,self.links,self.n = rel,rel.stem,out,links,0

    def asset(self, data:bytes, ext):
        self.n += 1
        d = self.out/self.rel.parent/f'{self.stem}_files'
        d.mkdir(parents=True, exist_ok=True)
        (d/f'img{self.n}{ext}').write_bytes(data)
        return f'{self.stem}_files/img{self.n}{ext}'

    def markdown(self, cell):
        src = cell.source
        for name, att in (cell.get('attachments') or {}).items():
            mime = next((m for m in att if m in _MIME_EXT), None)
            if mime is None: continue
            data = att[mime] if mime == 'image/svg+xml' else base64.b64decode(att[mime])
            src = src.replace(f'attachment:{name}', self.asset(data.encode() if isinstance(data, str) else data, _MIME_EXT[mime]))
        return self.links(src, self.rel)

    def output(self, o):
        if o.get('output_type') == 'stream': return _fence(''.join(o.get('text', '')), 'text')
        d = o.get('data', {})
        for mime, ext in _MIME_EXT.items():
            if mime in d:
                v = ''.join(d[mime]) if isinstance(d[mime], list) else d[mime]
                return f'![output]({self.asset(v.encode() if mime == "image/svg+xml" else base64.b64decode(v), ext)})'
        if 'text/markdown' in d: return self.links(''.join(d['text/markdown']), self.rel)
        if 'text/html' in d: return '<div class="nb-output">\n' + ''.join(d['text/html']) + '\n</div>'
        if 'text/plain' in d: return _fence(''.join(d['text/plain']), 'text')
        return ''

    def render(self, nb, fm):
        parts = [f"# {fm.get('title', self.stem)}"]
        if fm.get('description'): parts.append(f"> {fm['description']}")
        for c in nb.cells:
            if c.cell_type == 'markdown': parts.append(self.markdown(c))
            elif c.cell_type == 'code':
                dirs = _directives(c.source)
                code = re.sub(r'^#\|.*(\n|$)', '', c.source, flags=re.M).strip()
                if code and dirs.get('echo') != 'false': parts.append(_fence(code, 'python'))
                outs = [self.output(o) for o in c.get('outputs', [])] if dirs.get('output') != 'false' else []
                if re.match(r'show_doc\(', code):  # its heading gets the id nbdev links to, even when a section has that name
                    outs = [re.sub(r'^(#{1,6} +)(\S+?)[ \t]*$', lambda m: f'{m[1]}{m[2]} {{#{slugify(m[2])}}}', o, count=1, flags=re.M) for o in outs]
                parts += outs
        return '\n\n'.join(p for p in parts if p and p.strip()) + '\n'

_NBDEV_LINK = 'nbdev-link:'

def _anchors(md):
    "Ids of the headings of a Markdown page (outside code fences), as `slugify` makes them"
    md = re.sub(r'^(`{3,}).*?^\1', '', md, flags=re.M|re.S)
    return {slugify(re.sub(r'\s*\{.*\}\s*$', '', h)) for h in re.findall(r'^#{1,6}\s+(.+?)\s*#*\s*$', md, re.M)}

def _check_anchors(work, quiet):
    """nbdev links every name of its index, private ones too, whose docs have no heading: such a link becomes the
    plain `name` (the published nbdev site would have a dead #anchor there). Hand-written links are left as they are"""
    work = work.resolve()
    pages = {p: p.read_text() for p in work.rglob('*.md')}
    ids = {p: _anchors(md) for p,md in pages.items()}
    for p,md in pages.items():
        def fix(m):
            target = (p.parent/m.group(2)).resolve()
            anchor = (m.group(3) or '#')[1:]
            if target in ids and (not anchor or anchor in ids[target]): return f'[{m.group(1)}]({m.group(2)}{m.group(3) or ""})'
            if not quiet: print(f'  {p.relative_to(work)}: {m.group(1)} has no doc heading, left unlinked')
            return m.group(1)
        p.write_text(re.sub(r'\[([^\]]*)\]\(' + _NBDEV_LINK + r'([^)#]+)(#[^)]*)?\)', fix, md))

def notebooks(nbs):
    "The notebooks that get a page, in nbdev's order (files and folders starting with `_` or `.` are skipped)"
    from nbdev.doclinks import nbglob
    return sorted(nbglob(nbs, func=Path), key=lambda p: p.relative_to(nbs).as_posix())

def write_pages(work:Path, quiet=False):
    "Process every notebook with nbdev and write its Markdown page into `work`; the mkdocs nav"
    from fastcore.nbio import read_nb
    from nbdev.config import get_config, nbpath2html
    cfg = get_config()
    nbs = Path(cfg.nbs_path)
    docs_url = f"{cfg.get('doc_host', '').rstrip('/')}{cfg.get('doc_baseurl', '')}".rstrip('/') + '/'
    if work.exists(): shutil.rmtree(work)
    work.mkdir(parents=True)
    files = notebooks(nbs)
    stems = {nbpath2html(f.relative_to(nbs)).with_suffix('').as_posix() for f in files}
    def links(md, page):
        """nbdev links a backticked name to its page on the published site, and a notebook may link `x.ipynb`:
        both become relative links to the pages built here (nbdev's ones marked, for `_check_anchors`)"""
        def rel(stem, anchor, mark=''):
            return mark + os.path.relpath(f'{stem}.md', Path(page).parent.as_posix()) + (anchor or '')
        def site(m):
            return '](' + rel(m.group(1), m.group(2), _NBDEV_LINK) + ')' if m.group(1) in stems else m.group(0)
        md = re.sub(r'\]\(' + re.escape(docs_url) + r'([\w./-]+?)\.html(#[\w.-]*)?\)', site, md)
        def nb(m):
            stem = nbpath2html((Path(page).parent/m.group(1)).as_posix()).with_suffix('').as_posix()
            return '](' + rel(stem, m.group(2)) + ')' if stem in stems else m.group(0)
        return re.sub(r'\]\(((?!\w+:)[\w./-]+?)\.ipynb(#[\w.-]*)?\)', nb, md)
    for f in nbs.rglob('*'):  # images the notebooks' markdown refers to by relative path
        if f.suffix.lower() in IMAGE_EXTS and not any(p.startswith(('_', '.')) for p in f.relative_to(nbs).parts):
            (work/f.relative_to(nbs)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, work/f.relative_to(nbs))
    proc, nav = _safe_procs(), []
    os.environ['IN_TEST'] = '1'  # as nbdev-proc-nbs does: notebooks can tell they are being rendered
    for f in files:
        t = time.time()
        nb = read_nb(f)
        proc(nb)
        fm = _frontmatter(nb)
        rel = nbpath2html(f.relative_to(nbs)).with_suffix('.md')
        (work/rel).parent.mkdir(parents=True, exist_ok=True)
        (work/rel).write_text(_Page(rel, work, links).render(nb, fm))
        nav.append({('Home' if rel.as_posix() == 'index.md' else fm.get('title', rel.stem)): rel.as_posix()})
        if not quiet: print(f'{f.relative_to(nbs)} -> {rel.with_suffix(".html")} ({time.time()-t:.1f} s)', flush=True)
    nav.sort(key=lambda d: next(iter(d.values())) != 'index.md')  # home page first
    _check_anchors(work, quiet)
    from pygments.formatters import HtmlFormatter
    (work/'css').mkdir(exist_ok=True)
    (work/'css'/'pygments.css').write_text(HtmlFormatter(style='default').get_style_defs('.codehilite'))
    return nav

def build(site:Path=None, work:Path=None, quiet=False, project:Path=ROOT):
    """Build the site of the nbdev `project` (this one by default) into `site` (default: nbdev's `doc_path`, `docs/`),
    from Markdown pages written to `work` (default: `_mkdocs/`)"""
    site,work = [None if p is None else Path(p).absolute() for p in (site, work)]
    os.chdir(project)  # nbdev's get_config() is found from the project root
    # this checkout's package (whatever the venv has installed) and build_docs.slugify, which mkdocs.yml names
    sys.path[:0] = [str(ROOT), str(ROOT/'tools')]
    from nbdev.config import get_config
    site = site or Path(get_config().doc_path).absolute()
    work = work or Path(project).absolute()/'_mkdocs'
    t = time.time()
    nav = write_pages(work, quiet=quiet)
    t1 = time.time()
    from mkdocs.config import load_config
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.exceptions import Abort
    import logging
    if not logging.getLogger('mkdocs').handlers:  # mkdocs' own command line sets this up: say its warnings here too
        h = logging.StreamHandler(); h.setFormatter(logging.Formatter('%(levelname)s mkdocs: %(message)s'))
        logging.getLogger('mkdocs').addHandler(h)
        logging.getLogger('mkdocs').setLevel(logging.WARNING)
    cfg = load_config(str(ROOT/'mkdocs.yml'), docs_dir=str(work), site_dir=str(site), nav=nav)
    try: mkdocs_build(cfg)
    except Abort as e: raise SystemExit(f'docs build failed: {e.message}') from None
    if not quiet: print(f'{len(nav)} pages in {site}: nbdev processing {t1-t:.1f} s, mkdocs {time.time()-t1:.1f} s')
    return site

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--site', help="where the site goes (default: nbdev's doc_path, docs/)")
    p.add_argument('--work', help='where the Markdown pages go (default: _mkdocs/)')
    p.add_argument('--project', default=ROOT, help='the nbdev project (default: this one)')
    p.add_argument('--quiet', action='store_true')
    a = p.parse_args()
    build(a.site, a.work, a.quiet, a.project)
