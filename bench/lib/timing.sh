# Shared by the bench/*.sh scripts that time CLI commands side by side.
# Source it, then call time_ops after setting:
#   work   a scratch directory (time -v reports go there)
#   runs   rounds; every op runs once per round, in order, so drift is paired
#   ops    ("NAME|OUTPUT|COMMAND" ...): OUTPUT is removed before and after
#   before_op  optional: a function run before each op (e.g. cache warming)
# Results: walls[NAME] (seconds, one per round), rss[NAME] (max KiB);
# t NAME prints the median wall time, ratio NAME BASE the median of the
# per-round ratios NAME / BASE.
declare -A walls rss

time_ops() {
  local i op name out cmd wall r
  for ((i = 0; i < runs; i++)); do
    for op in "${ops[@]}"; do
      IFS='|' read -r name out cmd <<< "$op"
      rm -rf "$out"
      if declare -F before_op > /dev/null; then before_op; fi
      /usr/bin/time -v -o "$work/time.$name" sh -c "$cmd" > /dev/null
      rm -rf "$out"
      wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.$name" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
      r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.$name")
      walls[$name]+="$wall "
      # An if, not `(( ... )) && ...`: a false test as the function's last
      # command would be its status, and set -e callers would stop there.
      if (( r > ${rss[$name]:-0} )); then rss[$name]=$r; fi
    done
  done
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Median of the per-round ratios NAME / BASE (paired, so drift cancels).
ratio() {
  paste -d' ' <(echo "${walls[$1]}" | tr ' ' '\n' | grep .) <(echo "${walls[$2]}" | tr ' ' '\n' | grep .) |
    awk '{print $1/$2}' | median
}
t() { echo "${walls[$1]}" | median; }
