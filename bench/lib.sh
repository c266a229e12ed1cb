# Shared by the bench scripts: timing with peak RSS, and the ratio-to-cp report.
# measure LABEL CMD...: prints "LABEL seconds peak_rss_mb"
measure() {
    local label=$1; shift
    python3 "$(dirname "${BASH_SOURCE[0]}")/peakrss.py" "$@" 2>"$work/m.log" >/dev/null ||
        { echo "bench: $label failed:" >&2; cat "$work/m.log" >&2; return 1; }
    local w r
    read -r w r < <(sed -n 's/.*wall_s=\([0-9.]*\) peak_rss_mb=\([0-9.]*\).*/\1 \2/p' "$work/m.log")
    echo "$label $w $r"
}
# report LABEL BYTES_IN BYTES_OUT SECONDS RSS_MB CP_SECONDS
report() {
    python3 - "$@" <<'PY'
import sys
label, bi, bo, cs, rss, cps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
conv = (bi + bo) / cs / 1e9
cp = 2 * bi / cps / 1e9
print(f"{label}: {bi/1e9:.2f} GB in, {bo/1e9:.2f} GB out in {cs:.1f} s ({conv:.2f} GB/s read+write); "
      f"cp -r of the input: {cps:.1f} s ({cp:.2f} GB/s); ratio {conv/cp:.2f}x cp; peak RSS {rss:.0f} MB")
PY
}
