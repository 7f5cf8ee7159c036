# report.sh — sourced by the demos: writes a self-contained HTML report
# (no network needed to view it) whose charts are SVG drawn by gnuplot
# (Debian's gnuplot-nox) and inlined into the page.
#
#   report_begin NAME TITLE          start $DEMO_OUT/NAME.html
#   report_text HTML                 a paragraph (or any HTML)
#   report_pre FILE                  a file's text, preformatted
#   report_table CAPTION SQL         the query's result as an HTML table
#   report_data FILE SQL             the query's rows, tab-separated, into FILE
#   report_chart ID TITLE N SCRIPT   a chart of N series: SCRIPT is gnuplot's
#                                    settings and plot command
#   report_end                       close the page
#
# Each chart is a <figure class="chart" data-series="N">.  A script in the
# page, run by the browser once the page has loaded, counts the series that
# drew something (gnuplot puts each in a <g id="gnuplot_plot_K">) and writes
# data-drawn-series and data-width on the figure; test/t/070_demo_reports.pl
# reads them from headless Chromium's DOM and compares them with N.

report_begin()
{
	REPORT_NAME=$1
	REPORT_FILE=$DEMO_OUT/$1.html
	REPORT_DATA=$(mktemp -d)
	cat >"$REPORT_FILE.tmp" <<EOF
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>$2</title>
<style>
body { font-family: sans-serif; margin: 24px auto; max-width: 1000px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
figure.chart { margin: 12px 0; border: 1px solid #ddd; padding: 6px; }
figure.chart svg { width: 100%; height: auto; }
figcaption { font-size: 13px; color: #555; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
pre { font-size: 12px; background: #f6f6f6; padding: 8px; overflow-x: auto; }
</style></head><body>
<h1>$2</h1>
<p>Generated $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores by <code>make demo</code> (pg_streamml $(psql -X -Atc 'SELECT streamml.version()')).</p>
EOF
}

report_text()
{
	printf '%s\n' "$1" >>"$REPORT_FILE.tmp"
}

report_pre()
{
	{
		echo '<pre>'
		sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' "$1"
		echo '</pre>'
	} >>"$REPORT_FILE.tmp"
}

report_table()
{
	{
		printf '<h2>%s</h2>\n' "$1"
		psql -X -q --html -P footer=off -P tableattr='class="data"' -c "$2"
	} >>"$REPORT_FILE.tmp"
}

# The data queries wait in a batch that report_chart runs in one psql
# session (a connection costs a few tenths of a second on a busy machine).
report_data()
{
	printf '\\o %s\n%s;\n' "$REPORT_DATA/$1" "$2" >>"$REPORT_DATA/batch.sql"
}

report_flush()
{
	[ -s "$REPORT_DATA/batch.sql" ] || return 0
	psql -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -f "$REPORT_DATA/batch.sql" >/dev/null
	rm -f "$REPORT_DATA/batch.sql"
}

report_chart()
{
	local id=$1 title=$2 series=$3 script=$4 svg
	report_flush
	svg=$(cd "$REPORT_DATA" && gnuplot 2>&1 <<EOF
set terminal svg size 960,380 dynamic enhanced font 'sans,11' background '#ffffff'
set output '$id.svg'
set grid lc rgb '#e0e0e0'
set key top left opaque
set datafile separator '\t'
$script
EOF
	) || {
		echo "report: gnuplot failed on chart $id: $svg" >&2
		return 1
	}
	{
		printf '<h2>%s</h2>\n<figure class="chart" id="%s" data-series="%s">\n' "$title" "$id" "$series"
		sed '1,/^<svg/{/^<svg/!d}' "$REPORT_DATA/$id.svg"
		printf '</figure>\n'
	} >>"$REPORT_FILE.tmp"
}

report_end()
{
	cat >>"$REPORT_FILE.tmp" <<'EOF'
<script>
// Counts, for every chart, the series that drew something visible.
window.addEventListener('load', function () {
	document.querySelectorAll('figure.chart').forEach(function (fig) {
		var svg = fig.querySelector('svg');
		var drawn = 0, seen = {}, box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
		if (svg)
			svg.querySelectorAll('g[id^="gnuplot_plot_"]').forEach(function (g) {
				// a series' own group comes first; with an opaque key,
				// gnuplot draws the key's sample again in a second group
				// of the same id, which must not count
				if (!/^gnuplot_plot_[0-9]+$/.test(g.id) || seen[g.id])
					return;
				seen[g.id] = true;
				// drawn: a mark larger than a key sample, or several marks
				var marks = g.querySelectorAll('path, polyline, polygon, rect, use, circle');
				var visible = 0, large = false;
				for (var i = 0; i < marks.length; i++) {
					var b = marks[i].getBBox();
					if (b.width > 0 || b.height > 0)
						visible++;
					if (b.width > 60 || b.height > 40)
						large = true;
				}
				if (large || visible >= 5)
					drawn++;
			});
		fig.setAttribute('data-drawn-series', drawn);
		fig.setAttribute('data-width', Math.round(box.width));
		fig.setAttribute('data-height', Math.round(box.height));
	});
	document.body.setAttribute('data-checked', 'yes');
});
</script>
</body></html>
EOF
	mv "$REPORT_FILE.tmp" "$REPORT_FILE"
	rm -rf "$REPORT_DATA"
	echo "report written: $REPORT_FILE"
}
