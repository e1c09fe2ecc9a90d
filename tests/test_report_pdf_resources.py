"""The PDF renderer fetches nothing: the report is self-contained (issue 10, item 4)."""

import base64

import pytest

from reports.rendering import render_pdf


def test_a_self_contained_report_renders():
    assert render_pdf("<p>Summary</p><svg width='10' height='10'><rect width='5' height='5'/></svg>").startswith(
        b"%PDF"
    )


@pytest.mark.parametrize(
    "html",
    [
        '<img src="file:///etc/passwd">',
        '<link rel="stylesheet" href="http://169.254.169.254/latest/meta-data/">',
        "<style>@import url(https://example.org/x.css);</style><p>x</p>",
        "<p style=\"background: url('file:///etc/hostname')\">x</p>",
        '<img src="data:image/png;base64,iVBORw0KGgo=">',
    ],
)
def test_every_url_is_refused(html, monkeypatch):
    fetched = []
    import weasyprint.urls

    # WeasyPrint's own fetcher, which would otherwise read files and make requests.
    monkeypatch.setattr(weasyprint.urls.URLFetcher, "fetch", lambda self, url, *a, **k: fetched.append(url))
    with pytest.raises(ValueError, match="fetches no resources"):
        render_pdf(html)
    assert fetched == []


def test_a_chart_image_is_read_from_itself_and_what_it_links_to_is_refused(monkeypatch):
    import weasyprint.urls

    from reports import rendering

    fetched, asked = [], []
    monkeypatch.setattr(weasyprint.urls.URLFetcher, "fetch", lambda self, url, *a, **k: fetched.append(url))
    real = rendering.refuse_every_url
    monkeypatch.setattr(rendering, "refuse_every_url", lambda url: asked.append(url) or real(url))
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
        b'<image xlink:href="file:///etc/hostname" width="5" height="5"/><rect width="5" height="5"/></svg>'
    )
    # WeasyPrint draws the broken image as nothing (and logs it); the file is never read.
    assert render_pdf(f'<img src="data:image/svg+xml;base64,{base64.b64encode(svg).decode()}">').startswith(b"%PDF")
    assert fetched == []
    assert [url[:26] for url in asked] == ["data:image/svg+xml;base64,", "file:///etc/hostname"]
