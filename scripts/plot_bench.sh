#!/usr/bin/env bash
# Plots a genome-bench run as one PNG (three panels):
#   1. load throughput vs adapter size: genomed cold (1 and N workers),
#      in-process malloc+pread, in-process mmap, memcpy;
#   2. acquire+release throughput vs client count, genomed vs raw socket;
#   3. acquire+release latency (p50, p99) vs raw socket round trip.
#
# usage: scripts/plot_bench.sh [-j RESULT.json] [-o OUT.png] [-b BUILD_DIR] [-- GENOME_BENCH_ARGS...]
#   -j FILE   plot an existing genome-bench --json FILE instead of running it
#   -o FILE   output image (default: bench-results.png in the current directory)
#   -b DIR    build directory of genome-bench (default: build-bench; built there if missing)
#   args after -- go to genome-bench (e.g. -- --quick)
# Without -j it runs genome-bench --json into OUT.json (next to OUT.png) first.
# Installs gnuplot-nox and jq with apt-get if they are missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
json=""
out="bench-results.png"
build="$here/../build-bench"
bench_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -j) json="$2"; shift 2 ;;
    -o) out="$2"; shift 2 ;;
    -b) build="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; bench_args=("$@"); break ;;
    *) echo "plot_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

need=()
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)
command -v jq >/dev/null 2>&1 || need+=(jq)
if [[ ${#need[@]} -gt 0 ]]; then
  echo "installing ${need[*]} ..." >&2
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

if [[ -z "$json" ]]; then
  json="${out%.png}.json"
  bin="$build/genome-bench"
  if [[ ! -x "$bin" ]]; then
    echo "building genome-bench (Release) into $build ..." >&2
    bash "$here/install-deps.sh"
    cmake -S "$here/.." -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" -j "$(nproc)" --target genome-bench >/dev/null
  fi
  "$bin" --json "$json" "${bench_args[@]}"
fi
[[ -r "$json" ]] || { echo "plot_bench.sh: cannot read $json" >&2; exit 1; }

tmp="$(mktemp -d /tmp/plot-bench-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# size (MiB), cold w1, cold wN, in-process load, in-process mmap, memcpy
for s in 16 128 512; do
  jq -r --arg s "${s}m" '[($s|rtrimstr("m")),
      .["cold_load_gbps_\($s)_w1"], .["cold_load_gbps_\($s)_wN"],
      .["inprocess_load_gbps_\($s)"], .["inprocess_mmap_gbps_\($s)"], .memcpy_gbps] | @tsv' "$json"
done >"$tmp/load.tsv"
# clients, genomed hit ops/s, raw socket round trips/s
for n in 1 4 16; do
  jq -r --arg n "$n" '[$n, .["hit_throughput_ops_\($n)"], .["socket_rtt_throughput_\($n)"]] | @tsv' "$json"
done >"$tmp/tput.tsv"
# label, p50, p99
jq -r '["hit, 256 tensors", .hit_p50_us, .hit_p99_us] | @tsv' "$json" >"$tmp/lat.tsv"
jq -r '["hit, 4 tensors", .hit_small_p50_us, .hit_small_p99_us] | @tsv' "$json" >>"$tmp/lat.tsv"
jq -r '["raw socket RTT", .socket_rtt_p50_us, .socket_rtt_p99_us] | @tsv' "$json" >>"$tmp/lat.tsv"
workers_n="$(jq -r '.workers_n // "N"' "$json")"
mode="$(jq -r '.mode // ""' "$json")"

gnuplot <<EOF
set terminal pngcairo size 1800,700 font "sans,10"
set output "$out"
set datafile separator "\t"
set multiplot layout 1,3 title "genome-bench ($mode run, $(basename "$json"))"
set grid

set title "load throughput vs adapter size (page cache warm)"
set xlabel "adapter size (MiB)"
set ylabel "GB/s"
set logscale xy 2
set xrange [11:740]
set xtics ("16" 16, "128" 128, "512" 512)
set ytics (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
set key outside below maxrows 3
plot "$tmp/load.tsv" using 1:2 with linespoints lw 2 pt 7 title "genomed cold, 1 worker", \
     "" using 1:3 with linespoints lw 2 pt 5 title "genomed cold, $workers_n workers", \
     "" using 1:4 with linespoints lw 2 pt 9 title "in-process malloc+pread", \
     "" using 1:5 with linespoints lw 2 pt 11 title "in-process mmap+read", \
     "" using 1:6 with lines lw 2 dt 2 title "memcpy (warm)"
unset logscale xy
set xrange [*:*]
set ytics autofreq

set title "acquire+release throughput vs clients"
set xlabel "concurrent clients (connections)"
set ylabel "operations / s"
set logscale x 2
set xrange [0.8:20]
set yrange [0:*]
set xtics ("1" 1, "4" 4, "16" 16)
set key outside below
plot "$tmp/tput.tsv" using 1:2 with linespoints lw 2 pt 7 title "genomed acquire+release", \
     "" using 1:3 with linespoints lw 2 pt 5 title "raw socketpair round trips"
unset logscale x
set xrange [*:*]

set title "acquire+release latency, one client (cross-core)"
set xlabel ""
set ylabel "microseconds"
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set key outside below
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.7 border -1
set xtics ()
set xtics nomirror rotate by 0
plot "$tmp/lat.tsv" using 2:xtic(1) title "p50", "" using 3 title "p99"
unset multiplot
EOF
echo "wrote $out (from $json)"
