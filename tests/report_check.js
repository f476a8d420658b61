// report_check.js: appended by tests/report_browser.sh to a copy of a qat
// report (the report itself has no script), run by headless Chromium: it
// measures what the browser laid out and writes one line per chart into
// <pre id="qat-check">, which --dump-dom prints for the shell to grep:
//   chart ID xticks N yticks N legend N overlaps N outside N scale S
// A tick is a label that parses as a number; overlaps counts pairs of text
// boxes of the chart that intersect; outside, texts not wholly inside it.
(function () {
    function boxes_overlap(a, b) {
        return a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
    }
    function numeric(t) {
        return t.length > 0 && isFinite(Number(t));
    }
    var out = [];
    var charts = document.querySelectorAll('svg.chart');
    for (var i = 0; i < charts.length; i++) {
        var svg = charts[i];
        var r = svg.getBoundingClientRect();
        var xt = svg.querySelectorAll('g.axis.x text.tick'), yt = svg.querySelectorAll('g.axis.y text.tick');
        var nx = 0, ny = 0;
        for (var k = 0; k < xt.length; k++) if (numeric(xt[k].textContent)) nx++;
        for (var k = 0; k < yt.length; k++) if (numeric(yt[k].textContent)) ny++;
        var legend = svg.querySelectorAll('g.legend text').length;
        var texts = svg.querySelectorAll('text'), tb = [];
        for (var k = 0; k < texts.length; k++) tb.push(texts[k].getBoundingClientRect());
        var overlaps = 0, outside = 0;
        for (var a = 0; a < tb.length; a++) {
            if (tb[a].left < r.left - 0.5 || tb[a].right > r.right + 0.5 || tb[a].top < r.top - 0.5 ||
                tb[a].bottom > r.bottom + 0.5)
                outside++;
            for (var b = a + 1; b < tb.length; b++)
                if (boxes_overlap(tb[a], tb[b])) overlaps++;
        }
        var ya = svg.querySelector('g.axis.y');
        out.push('chart ' + svg.getAttribute('data-chart') + ' width ' + Math.round(r.width) + ' xticks ' + nx +
                 ' yticks ' + ny + ' legend ' + legend + ' overlaps ' + overlaps + ' outside ' + outside + ' scale ' +
                 (ya ? ya.getAttribute('data-scale') : 'none'));
    }
    var pre = document.createElement('pre');
    pre.id = 'qat-check';
    pre.textContent = 'charts ' + charts.length + '\n' + out.join('\n') + '\n';
    document.body.appendChild(pre);
})();
