"""The docs site (`make docs`, tools/build_docs.py) opened in headless Chromium, as a reader would get it.

The site is built from the notebooks into a temporary folder and served on 127.0.0.1. Every page must load, every
link inside the site must reach an existing page (and #anchor), every image must decode, nothing may be fetched
from outside this machine, every page must be reachable from the home page, every notebook must have its page, and
every public function and class its signature and docments. `test_checker_*` prove the checks fail when they should.
"""
import functools, http.server, importlib, inspect, json, re, subprocess, sys, threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import Browser, ChromiumMissing, is_local

ROOT = Path(__file__).resolve().parent.parent

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError): super().handle_error(request, client_address)  # the browser may drop a fetch

@contextmanager
def serve(directory):
    "Serve `directory` on 127.0.0.1 (a free port) while inside; yields the base URL"
    srv = _Server(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(directory)))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try: yield f'http://127.0.0.1:{srv.server_address[1]}/'
    finally: srv.shutdown(); srv.server_close(); th.join(10)

def _target(base, root, url):
    "The file under `root` that a same-site `url` names"
    path = unquote(urlsplit(url).path)[len(urlsplit(base).path):]
    f = root/path
    return f/'index.html' if path == '' or path.endswith('/') or f.is_dir() else f

def check_site(browser, root, home='index.html'):
    """Visit every HTML page under `root` (served on 127.0.0.1) and list what a reader would find broken:
    a page that does not load, a JavaScript error, a request that fails or leaves this machine, an image that does
    not decode, a link inside the site to a missing file or #anchor, a page not reachable from `home`.
    Returns (problems, visits) with visits {page path: what `Browser.visit` saw}"""
    root = Path(root)
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob('*.html'))
    problems, visits = [], {}
    with serve(root) as base:
        for page in pages:
            try: r = visits[page] = browser.visit(base + page)
            except Exception as e: problems.append(f'{page}: does not load: {e}'); continue
            if r['status'] != 200: problems.append(f'{page}: HTTP {r["status"]}')
            problems += [f'{page}: JavaScript error: {e}' for e in r['errors']]
            problems += [f'{page}: request left this machine (refused): {u}' for u in r['refused']]
            problems += [f'{page}: request failed: {u}' for u in r['failed']]
            problems += [f'{page}: image does not decode: {i["src"][:100]}' for i in r['images']
                         if not i['complete'] or i['width'] == 0]
        ids = {p: set(r['ids']) for p,r in visits.items()}
        edges = {p: set() for p in pages}
        for page, r in visits.items():
            for l in r['links'] + [dict(href=f['action'], url=f['url'], text='form') for f in r['forms']]:
                url, frag = urldefrag(l['url'])
                if not url.startswith(base):
                    if not is_local(url): continue  # a link out is not followed: only requests are refused
                    problems.append(f'{page}: link {l["href"]!r} leaves the site'); continue
                f = _target(base, root, url)
                rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
                if not f.is_file(): problems.append(f'{page}: link {l["href"]!r} ({l["text"]!r}): no such page {rel}'); continue
                edges[page].add(rel)
                if frag and rel in ids and unquote(frag) not in ids[rel]:
                    problems.append(f'{page}: link {l["href"]!r} ({l["text"]!r}): no #{unquote(frag)} on {rel}')
    seen, todo = {home}, [home]
    while todo:
        for q in edges.get(todo.pop(), ()):
            if q not in seen: seen.add(q); todo.append(q)
    problems += [f'{p}: not reachable from {home}' for p in pages if p not in seen and p != '404.html']
    return problems, visits

@pytest.fixture(scope='module')
def browser():
    try:
        with Browser() as b: yield b
    except ChromiumMissing as e: pytest.fail(str(e))

# ---- the checker itself, on a tiny site with known faults

def _png(path):
    from PIL import Image
    Image.new('RGB', (3, 2), (200, 30, 30)).save(path)

def _fake_site(d, broken):
    d.mkdir()
    _png(d/'ok.png')
    bad = ('<a href="missing.html">gone</a> <a href="good.html#nope">no anchor</a>'
           '<img src="corrupt.png" alt="corrupt"><img src="nofile.png" alt="missing">'
           '<img src="https://example.com/x.png" alt="remote">') if broken else ''
    (d/'index.html').write_text(f'<title>Home</title><h2 id="top">Home</h2><a href="good.html">good</a> '
                                f'<a href="good.html#sec">section</a> <a href="https://example.com/">out</a> '
                                f'<a href="sub/">sub</a> <img src="ok.png" alt="ok">{bad}')
    (d/'good.html').write_text('<title>Good</title><h2 id="sec">Section</h2><a href="index.html#top">home</a>')
    (d/'sub').mkdir()
    (d/'sub'/'index.html').write_text('<title>Sub</title><a href="../good.html">up</a>')
    if broken:
        (d/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n not a png')
        (d/'orphan.html').write_text('<title>Orphan</title>')

def test_checker_passes_a_good_site(tmp_path, browser):
    _fake_site(tmp_path/'site', broken=False)
    problems, visits = check_site(browser, tmp_path/'site')
    assert problems == []
    assert sorted(visits) == ['good.html', 'index.html', 'sub/index.html']
    assert [i['width'] for i in visits['index.html']['images']] == [3]

def test_checker_catches_broken_links_and_images(tmp_path, browser):
    _fake_site(tmp_path/'site', broken=True)
    problems, _ = check_site(browser, tmp_path/'site')
    text = '\n'.join(problems)
    for fault in ["link 'missing.html' ('gone'): no such page missing.html",
                  "link 'good.html#nope' ('no anchor'): no #nope on good.html",
                  'image does not decode: http://127.0.0.1', 'corrupt.png', 'nofile.png',
                  'request left this machine (refused): https://example.com/x.png',
                  'request failed: http://127.0.0.1', 'orphan.html: not reachable from index.html']:
        assert fault in text, f'{fault!r} not reported in:\n{text}'
    assert not any('example.com/ ' in p or "'out'" in p for p in problems), 'a link out is not a fault'
    assert sum('image does not decode' in p for p in problems) == 3, problems

# ---- the real site

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The site built from this checkout's notebooks, as `make docs` builds it (into a temporary folder)"
    tmp = tmp_path_factory.mktemp('docs')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--site', str(tmp/'site'),
                        '--work', str(tmp/'md'), '--quiet'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f'the docs build failed:\n{r.stdout}\n{r.stderr}'
    return tmp/'site'

@pytest.fixture(scope='module')
def checked(site, browser): return check_site(browser, site)

def test_site_loads_links_resolve_images_decode(checked):
    problems, visits = checked
    assert problems == [], '\n'.join(problems)
    assert all(u.startswith('http://127.0.0.1:') for r in visits.values() for u in r['requests'])

def _notebooks():
    return sorted(p for p in (ROOT/'nbs').rglob('*.ipynb')
                  if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT/'nbs').parts))

def _title(nb):
    "The notebook's title as its page shows it: its first markdown cell's `# heading` (as nbdev takes it), else the page name"
    cells = json.loads(nb.read_text())['cells']
    src = next((''.join(c['source']) for c in cells if c['cell_type'] == 'markdown'), '')
    m = re.match(r'\s*#\s+(.+)', src)
    if m: return re.sub(r'[`*]', '', m.group(1)).strip()
    from nbdev.config import nbpath2html
    return nbpath2html(nb.name).stem

def _h1(page, visits): return visits[page]['h1'][0].rstrip('¶').strip() if visits[page]['h1'] else None  # less the permalink

def test_one_page_per_notebook_readme_home(site, checked):
    _, visits = checked
    titles = {_h1(p, visits): p for p in visits}
    nbs = _notebooks()
    assert len(nbs) > 1
    missing = [nb.name for nb in nbs if _title(nb) not in titles]
    assert missing == [], f'notebooks without a page: {missing}; pages: {sorted(titles)}'
    assert titles[_title(ROOT/'nbs'/'index.ipynb')] == 'index.html', 'the README notebook is the home page'
    home = {l['href'] for l in visits['index.html']['links']}
    unlinked = [p for p in visits if p not in home and p not in ('index.html', '404.html', 'search.html')]
    assert unlinked == [], f'the home page (its sidebar) does not link {unlinked}'

def _public(nb):
    "The module a notebook exports to and its public functions and classes (those in `__all__` defined there)"
    src = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
    m = re.search(r'^#\|\s*default_exp\s+(\S+)', src, re.M)
    if m is None: return []
    mod = importlib.import_module(f'pneumonia_fastai.{m.group(1)}')
    objs = [getattr(mod, n) for n in getattr(mod, '__all__', [])]
    return [o for o in objs if (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == mod.__name__]

# the text under each heading with one of these ids, up to the next h1-h3 or rule
_SECTIONS = """ids => Object.fromEntries(ids.map(id => { const h = document.getElementById(id); if (!h) return [id, null];
    let t = '', e = h.nextElementSibling;
    while (e && !/^(H[1-3]|HR)$/.test(e.tagName)) { t += e.textContent + '\\n'; e = e.nextElementSibling; }
    return [id, t]; }))"""

def test_every_public_function_has_signature_and_docments(site, checked, browser):
    "Each public function and class: a heading (the #anchor nbdev links to), its signature, every argument's docment"
    from fastcore.docments import docments
    _, visits = checked
    pages = {_h1(p, visits): p for p in visits}
    problems, n = [], 0
    with serve(site) as base:
        for nb in _notebooks():
            objs = _public(nb)
            if not objs: continue
            page = pages[_title(nb)]
            ids = [o.__name__.lower() for o in objs]
            sections = browser.visit(base + page, script=_SECTIONS, arg=ids)['script']
            for o,i in zip(objs, ids):
                n += 1
                text = sections[i]
                if text is None: problems.append(f'{page}: no heading #{i} for {o.__name__}'); continue
                text = ' '.join(text.split())
                if f'{o.__name__}(' not in text: problems.append(f'{page}#{i}: no signature {o.__name__}(...)')
                for arg, doc in docments(o).items():
                    if doc and ' '.join(doc.split()) not in text: problems.append(f'{page}#{i}: {arg}: docment {doc!r} missing')
    assert n > 0
    assert problems == [], '\n'.join(problems)

# ---- images and links of a notebook, on a tiny nbdev project (this project's notebooks are stored without outputs)

def _nb(*cells): return json.dumps(dict(cells=list(cells), metadata={}, nbformat=4, nbformat_minor=5))
def _md(src, **kw): return dict(cell_type='markdown', metadata={}, source=src, **kw)
def _code(src, *outputs): return dict(cell_type='code', metadata={}, source=src, execution_count=None, outputs=list(outputs))

def test_notebook_images_and_links(tmp_path, browser):
    "An image in an output, an attachment, an image file beside the notebooks and a link to another notebook"
    import base64, io
    from PIL import Image
    def png(size):
        b = io.BytesIO(); Image.new('RGB', size, (30, 90, 200)).save(b, 'PNG'); return base64.b64encode(b.getvalue()).decode()
    p = tmp_path/'proj'
    (p/'nbs'/'img').mkdir(parents=True)
    (p/'pyproject.toml').write_text('[project]\nname = "fakeproj"\nversion = "0.0.1"\n\n'
                                    '[tool.nbdev]\nlib_path = "fakeproj"\nnbs_path = "nbs"\ndoc_path = "docs"\n')
    (p/'nbs'/'img'/'logo.png').write_bytes(base64.b64decode(png((7, 5))))
    # nbdev takes the first markdown cell for the title and description: the page's content starts in the next one
    (p/'nbs'/'index.ipynb').write_text(_nb(_md('# Fake home'), _md('See [the pictures](01_pics.ipynb#a-plot) and ![logo](img/logo.png)')))
    (p/'nbs'/'01_pics.ipynb').write_text(_nb(_md('# Pictures\n\n> Three kinds of image'),
        _md('![dot](attachment:dot.png)', attachments={'dot.png': {'image/png': png((4, 4))}}),
        _md('## A plot'),
        _code('plot()', dict(output_type='display_data', metadata={}, data={'image/png': png((9, 6)), 'text/plain': '<Figure>'})),
        _code('1+1', dict(output_type='execute_result', execution_count=1, metadata={}, data={'text/plain': '2'}))))
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--project', str(p), '--quiet'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f'the docs build failed:\n{r.stdout}\n{r.stderr}'
    problems, visits = check_site(browser, p/'docs')
    assert problems == [], '\n'.join(problems)
    assert [(i['width'], i['height']) for i in visits['index.html']['images']] == [(7, 5)]
    assert [(i['width'], i['height']) for i in visits['pics.html']['images']] == [(4, 4), (9, 6)]
    assert 'pics.html#a-plot' in {l['href'] for l in visits['index.html']['links']}
    assert _h1('pics.html', visits) == 'Pictures'
