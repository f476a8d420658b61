/* svg.c: line charts as inline SVG (svg.h). Ticks are "nice" numbers
 * (1, 2, 5 times a power of ten); a log axis ticks every decade (and 2 and
 * 5 within when it spans few); the legend wraps under the plot. */
#include <math.h>
#include <string.h>

#include "svg.h"

/* Colours chosen to stay apart for a reader with deuteranopia too
 * (Okabe and Ito's set, then darker tones). */
static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                      "#56b4e9", "#000000", "#8c564b", "#7f7f7f", "#bcbd22"};
#define NPALETTE ((int)(sizeof palette / sizeof palette[0]))

const char *qat_svg_color(int i)
{
    return palette[((i % NPALETTE) + NPALETTE) % NPALETTE];
}

void qat_svg_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* the smallest of 1, 2, 5 x 10^k that is >= x (x > 0) */
static double nice_step(double x)
{
    double p = pow(10.0, floor(log10(x)));
    double m = x / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

typedef struct {
    double lo, hi; /* the axis range (log10 of it on a log axis) */
    int log;
    double ticks[64];
    int nticks;
    int decimals; /* for linear tick labels; -1: %g */
} axis;

static void axis_linear(axis *a, double lo, double hi, int from_zero, int integer)
{
    if (from_zero && lo > 0) lo = 0;
    if (from_zero && hi < 0) hi = 0;
    if (!(hi > lo)) {
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1.0;
        if (integer) d = 1.0;
        lo -= d;
        hi += d;
        if (from_zero && lo < 0 && hi > 0 && lo > -d * 1.01) lo = 0;
    }
    double step = nice_step((hi - lo) / 5.0);
    if (integer && step < 1) step = 1;
    a->log = 0;
    a->lo = floor(lo / step + 1e-9) * step;
    a->hi = ceil(hi / step - 1e-9) * step;
    if (integer && !from_zero && step == 1) { /* a few epochs: the axis spans exactly the first to the last */
        a->lo = lo;
        a->hi = hi;
    }
    a->nticks = 0;
    double first = ceil(a->lo / step - 1e-9) * step;
    for (double t = first; t <= a->hi + step * 1e-6 && a->nticks < 64; t += step)
        a->ticks[a->nticks++] = fabs(t) < step * 1e-9 ? 0.0 : t;
    a->decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(a->hi) >= 1e6 || (step < 1 && a->decimals > 6)) a->decimals = -1;
}

static void axis_log(axis *a, double lo, double hi)
{
    double l0 = floor(log10(lo) + 1e-9), l1 = ceil(log10(hi) - 1e-9);
    if (l1 <= l0) l1 = l0 + 1;
    a->log = 1;
    a->lo = l0;
    a->hi = l1;
    a->nticks = 0;
    a->decimals = -1;
    int few = l1 - l0 <= 2;
    for (double d = l0; d <= l1 && a->nticks < 60; d++) {
        a->ticks[a->nticks++] = pow(10.0, d);
        if (few && d < l1) {
            a->ticks[a->nticks++] = 2 * pow(10.0, d);
            a->ticks[a->nticks++] = 5 * pow(10.0, d);
        }
    }
}

static double axis_pos(const axis *a, double v)
{
    double t = a->log ? log10(v) : v;
    return (t - a->lo) / (a->hi - a->lo);
}

static void tick_label(char *buf, size_t n, const axis *a, double v)
{
    if (a->decimals < 0) snprintf(buf, n, "%g", v);
    else snprintf(buf, n, "%.*f", a->decimals, v);
}

static int usable(double v, int logy)
{
    return isfinite(v) && (!logy || v > 0);
}

/* a legend entry's width in pixels at font-size 11 (about 6.2 px a character) */
static double legend_width(const char *label)
{
    return 30.0 + 6.2 * (double)strlen(label) + 14.0;
}

/* the legend's label of a series: none without a finite point */
static const char *series_label(const qat_svg_series *s)
{
    for (int i = 0; i < s->n; i++)
        if (isfinite(s->x[i]) && isfinite(s->y[i])) return s->label;
    return NULL;
}

static void dash_attr(FILE *f, int dash)
{
    if (dash == 1) fputs(" stroke-dasharray=\"6 3\"", f);
    else if (dash == 2) fputs(" stroke-dasharray=\"2 3\"", f);
}

void qat_svg_chart_write(FILE *f, const qat_svg_chart *c, const qat_svg_series *s, int ns)
{
    const double W = c->width > 0 ? c->width : 460, H0 = c->height > 0 ? c->height : 280;
    const double ml = 62, mr = 14, mt = 30, mb = 44;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY, ypos = INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].x[i]) || !isfinite(s[k].y[i])) continue;
            xlo = fmin(xlo, s[k].x[i]);
            xhi = fmax(xhi, s[k].x[i]);
            ylo = fmin(ylo, s[k].y[i]);
            yhi = fmax(yhi, s[k].y[i]);
            if (s[k].y[i] > 0) ypos = fmin(ypos, s[k].y[i]);
        }
    int empty = !(xlo <= xhi);
    int logy = c->logy;
    if (logy < 0) logy = !empty && ylo > 0 && yhi / ypos >= pow(10.0, 1.5);
    if (logy && !(ypos < INFINITY)) logy = 0;
    /* a histogram's bins: the axis covers their edges */
    double half = 0;
    if (c->steps)
        for (int k = 0; k < ns && half == 0; k++)
            if (s[k].n >= 2) half = 0.5 * fabs(s[k].x[1] - s[k].x[0]);

    /* legend rows under the x label */
    int nleg = (c->nmarks > 0 && c->mark_label) ? 1 : 0, maxpts = 0;
    for (int k = 0; k < ns; k++) {
        int pts = 0;
        for (int i = 0; i < s[k].n; i++) pts += isfinite(s[k].x[i]) && isfinite(s[k].y[i]);
        if (!pts) continue; /* a run that did not record it: no legend entry */
        nleg += s[k].label != NULL;
        maxpts = pts > maxpts ? pts : maxpts;
    }
    int rows = 0;
    double used = W;
    for (int k = 0; k <= ns; k++) {
        const char *lab = k < ns ? series_label(&s[k]) : (c->nmarks > 0 ? c->mark_label : NULL);
        if (!lab) continue;
        double w = legend_width(lab);
        if (used + w > W - ml - mr) {
            rows++;
            used = 0;
        }
        used += w;
    }
    const double H = H0 + (nleg ? rows * 18.0 + 4 : 0);
    const double pw = W - ml - mr, ph = H0 - mt - mb;

    fprintf(f, "<svg class=\"chart\" data-chart=\"");
    qat_svg_escape(f, c->id);
    fprintf(f, "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"11\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", W, H);
    fprintf(f, "<text class=\"title\" x=\"%.1f\" y=\"18\" font-size=\"13\" font-weight=\"bold\">", ml);
    qat_svg_escape(f, c->title);
    fprintf(f, "</text>\n");
    if (empty) {
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", ml, mt,
                pw, ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#666\">no data recorded</text>\n</svg>\n",
                ml + pw / 2, mt + ph / 2);
        return;
    }
    axis ax, ay;
    axis_linear(&ax, xlo - half, xhi + half, 0, c->xint);
    if (c->steps) { /* the bins' own range, not a rounded one */
        ax.lo = xlo - half;
        ax.hi = xhi + half;
    }
    if (logy) axis_log(&ay, ypos, yhi);
    else axis_linear(&ay, ylo, yhi, c->yzero, 0);

    /* grid and y ticks */
    fprintf(f, "<g class=\"axis y\"%s>\n", logy ? " data-scale=\"log\"" : " data-scale=\"linear\"");
    for (int i = 0; i < ay.nticks; i++) {
        double p = axis_pos(&ay, ay.ticks[i]);
        if (p < -1e-9 || p > 1 + 1e-9) continue;
        double y = mt + ph * (1 - p);
        char lab[32];
        tick_label(lab, sizeof lab, &ay, ay.ticks[i]);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>", ml, ml + pw, y, y);
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ml - 5, y + 4, lab);
    }
    fprintf(f, "<text class=\"label\" transform=\"translate(14,%.1f) rotate(-90)\" text-anchor=\"middle\">", mt + ph / 2);
    qat_svg_escape(f, c->ylabel);
    fprintf(f, "%s</text>\n</g>\n", logy ? " (log)" : "");
    /* x ticks */
    fprintf(f, "<g class=\"axis x\">\n");
    for (int i = 0; i < ax.nticks; i++) {
        double p = axis_pos(&ax, ax.ticks[i]);
        if (p < -1e-9 || p > 1 + 1e-9) continue;
        double x = ml + pw * p;
        char lab[32];
        tick_label(lab, sizeof lab, &ax, ax.ticks[i]);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>", x, x, mt + ph, mt + ph + 4);
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, mt + ph + 16, lab);
    }
    fprintf(f, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", ml + pw / 2, mt + ph + 34);
    qat_svg_escape(f, c->xlabel);
    fprintf(f, "</text>\n</g>\n");
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", ml, mt, pw,
            ph);

    /* marks (levels) under the curves */
    for (int i = 0; i < c->nmarks; i++) {
        double p = axis_pos(&ax, c->marks[i]);
        if (!(p >= 0 && p <= 1)) continue;
        double x = ml + pw * p;
        fprintf(f, "<line class=\"mark\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                   "stroke-dasharray=\"3 3\"/>\n", x, x, mt, mt + ph);
    }
    /* the curves, clipped to the plot */
    fprintf(f, "<g class=\"series\">\n");
    for (int k = 0; k < ns; k++) {
        int open = 0;
        for (int i = 0; i < s[k].n; i++) {
            double xv = s[k].x[i], yv = s[k].y[i];
            if (!isfinite(xv) || !usable(yv, logy)) {
                if (open) fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            double py = mt + ph * (1 - axis_pos(&ay, yv));
            if (!open) {
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"", qat_svg_color(s[k].color));
                dash_attr(f, s[k].dash);
                fputs(" points=\"", f);
                open = 1;
            }
            if (c->steps) {
                fprintf(f, "%.1f,%.1f %.1f,%.1f ", ml + pw * axis_pos(&ax, xv - half), py,
                        ml + pw * axis_pos(&ax, xv + half), py);
            } else {
                fprintf(f, "%.1f,%.1f ", ml + pw * axis_pos(&ax, xv), py);
            }
        }
        if (open) fputs("\"/>\n", f);
        /* few points: mark them, so a single epoch still shows */
        if (!c->steps && maxpts <= 40)
            for (int i = 0; i < s[k].n; i++)
                if (isfinite(s[k].x[i]) && usable(s[k].y[i], logy))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>", ml + pw * axis_pos(&ax, s[k].x[i]),
                            mt + ph * (1 - axis_pos(&ay, s[k].y[i])), qat_svg_color(s[k].color));
    }
    fprintf(f, "</g>\n");

    /* legend */
    if (nleg) {
        fprintf(f, "<g class=\"legend\">\n");
        double x = W, y = H0 - 6;
        for (int k = 0; k <= ns; k++) {
            const char *lab = k < ns ? series_label(&s[k]) : (c->nmarks > 0 ? c->mark_label : NULL);
            if (!lab) continue;
            double w = legend_width(lab);
            if (x + w > W - mr) {
                x = ml;
                y += 18;
            }
            if (k < ns) {
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"", x,
                        x + 24, y - 4, y - 4, qat_svg_color(s[k].color));
                dash_attr(f, s[k].dash);
                fputs("/>", f);
            } else {
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                           "stroke-dasharray=\"3 3\"/>", x + 12, x + 12, y - 11, y + 3);
            }
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 30, y);
            qat_svg_escape(f, lab);
            fprintf(f, "</text>\n");
            x += w;
        }
        fprintf(f, "</g>\n");
    }
    fprintf(f, "</svg>\n");
}
