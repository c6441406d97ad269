# bench/plots.gp - the plots of BENCHMARKS.md (gnuplot 5, Debian gnuplot-nox).
# Called by bench/report.py with -e variables:
#   outdir     where the SVGs go (bench/plots)
#   stamp      "date, machine" line for the titles
#   joindat    "N register_s converge_s" per line, or "" (no join data)
#   savesdat   "in_flight sqlite_rate memory_rate" per line, or ""
#   storedat   "per_txn rate" per line (store_bench), or ""
set terminal svg size 800,480 dynamic font "sans,12" background "white"
set grid
set key top left box opaque

$joingoal << EOD
500 0.5
10000 5
EOD

if (strlen(joindat) > 0) {
  set output outdir."/join.svg"
  set title "Join storm: N clients register, time until every table converged\n{/*0.8 ".stamp."}"
  set xlabel "clients N"
  set ylabel "seconds"
  set logscale x 10
  set logscale y 10
  set xrange [50:20000]
  set format y "%g"
  plot joindat using 1:3 with linespoints lw 2 pt 7 title "converged (every client's table)", \
       joindat using 1:2 with linespoints lw 1 pt 6 dt 2 title "registered (every REGISTER\\_RESULT OK)", \
       $joingoal using 1:2 with points pt 9 ps 1.8 lc rgb "red" title "goal (at most)"
  unset logscale
  unset xrange
}

if (strlen(savesdat) > 0 || strlen(storedat) > 0) {
  set output outdir."/saves.svg"
  set title "Durable saves per second vs SAVEs in flight / messages per transaction\n{/*0.8 ".stamp."}"
  set xlabel "SAVEs in flight (server) or messages per commit (store alone)"
  set ylabel "messages per second"
  set logscale x 2
  set logscale y 10
  set xrange [0.8:400]
  set format y "%.0f"
  set key bottom right
  cmd = ""
  if (strlen(savesdat) > 0) {
    cmd = cmd."savesdat using 1:2 with linespoints lw 2 pt 7 title 'server, sqlite (durable; bench\\_rr saves)', "
    cmd = cmd."savesdat using 1:3 with linespoints lw 1 pt 6 dt 2 title 'server, --store memory (reference)', "
  }
  if (strlen(storedat) > 0) {
    cmd = cmd."storedat using 1:2 with linespoints lw 1 pt 5 title 'store alone, per commit (store\\_bench)', "
  }
  cmd = cmd."55000 with lines lc rgb 'red' dt 3 title 'goal: 55,000/s at 64 in flight'"
  eval("plot ".cmd)
}
