#!/usr/bin/env bash
# scripts/check_layers.sh: checks that the folders under src/ depend only downwards, in the
# order written in docs/architecture.md:
#
#   core < ops < spec < {model, data} < {parallel, offload} < train < plan < cli
#
# Folders in braces stand beside each other: neither may use the other. Two checks:
#   includes  every #include "folder/file.h" in src/ names its own folder or a lower one,
#             and include/cetus.h includes nothing of src/;
#   symbols   (when built objects are there) every function or variable a folder's objects
#             use from another folder is defined in a lower one: this also catches calls
#             made through a declaration in the public header;
#   cycles    (the same objects) inside each folder, the files' calls to each other form
#             no cycle: a folder's files have an order too (tsort finds any loop).
# Usage: scripts/check_layers.sh [ROOT [BUILD]]   (defaults: the repository, ROOT/build)
# Prints each violation and exits 1 if there is any.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
build=${2:-$root/build}
declare -A rank=([core]=0 [ops]=1 [spec]=2 [model]=3 [data]=3 [parallel]=4 [offload]=4 [train]=5 [plan]=6 [cli]=7)
bad=0

allowed() { # from to: 0 when folder `from` may use folder `to`
    [ "$1" = "$2" ] && return 0
    [ -n "${rank[$2]:-}" ] && [ "${rank[$2]}" -lt "${rank[$1]}" ]
}

for dir in "$root"/src/*/; do
    name=$(basename "$dir")
    if [ -z "${rank[$name]:-}" ]; then
        echo "layers: src/$name/ has no place in the layer order (add it to scripts/check_layers.sh and docs/architecture.md)"
        bad=1
    fi
done

while IFS=: read -r file line text; do
    from=$(echo "${file#"$root"/src/}" | cut -d/ -f1)
    inc=$(echo "$text" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p')
    [ -z "$inc" ] && continue
    case "$inc" in */*) to=${inc%%/*} ;; *) continue ;; esac  # cetus.h or a file of its own folder
    if ! allowed "$from" "$to"; then
        echo "layers: ${file#"$root"/}:$line includes \"$inc\": $from/ may not use $to/"
        bad=1
    fi
done < <(grep -rn --include='*.[ch]' '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/src")

if grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$root/include/cetus.h" >/dev/null; then
    echo "layers: include/cetus.h includes a header of the project: the public header stands alone"
    bad=1
fi

objects() { # the objects of today's sources (stale objects of moved files are left out)
    for c in "$root"/src/*/*.c; do
        o="$build/src/${c#"$root"/src/}"; o="${o%.c}.o"
        [ -f "$o" ] && echo "$o"
    done
}

if [ -d "$build/src" ]; then
    declare -A home=()
    while read -r obj sym; do home[$sym]=$obj; done < <(
        for o in $(objects); do
            nm --defined-only -g "$o" 2>/dev/null | awk -v f="$(basename "$(dirname "$o")")" '$2 ~ /[TDBR]/ {print f, $3}'
        done)
    declare -A file_of=()
    while read -r obj sym; do file_of[$sym]=$obj; done < <(
        for o in $(objects); do
            nm --defined-only -g "$o" 2>/dev/null | awk -v f="$(basename "$o" .o)" '$2 ~ /[TDBR]/ {print f, $3}'
        done)
    declare -A calls=() # folder -> "caller callee" lines between its files
    for o in $(objects); do
        from=$(basename "$(dirname "$o")")
        me=$(basename "$o" .o)
        for sym in $(nm -u "$o" 2>/dev/null | awk '{print $2}'); do
            to=${home[$sym]:-}
            [ -z "$to" ] && continue
            if ! allowed "$from" "$to"; then
                echo "layers: src/$from/$me.c uses $sym, defined in $to/: $from/ may not use $to/"
                bad=1
            elif [ "$to" = "$from" ] && [ "${file_of[$sym]}" != "$me" ]; then
                calls[$from]+="$me ${file_of[$sym]}"$'\n'
            fi
        done
    done
    for folder in "${!calls[@]}"; do
        loop=$(printf '%s' "${calls[$folder]}" | sort -u | tsort 2>&1 >/dev/null | grep -v 'input contains a loop' | sed 's/^tsort: //' | tr '\n' ' ')
        if [ -n "$loop" ]; then
            echo "layers: src/$folder/: its files call each other in a cycle: $loop(each must use only files below it)"
            bad=1
        fi
    done
else
    echo "layers: no objects under $build/src: symbol check skipped (build first)"
fi

[ "$bad" -eq 0 ] && echo "layers: every dependency points down the layer order"
exit "$bad"
