# zsh -f tests/zsh_capture.zsh FPATH_DIR WORDS...: what zsh's completion offers for
# "WORDS<TAB>", one a line. A zsh in a pty (zpty) loads the completion from FPATH_DIR, and
# compadd is wrapped to print each match instead of inserting it.
zmodload zsh/zpty || exit 2
fdir=$1; shift
zpty z zsh -f -i
local line
zpty -w z "PROMPT=; fpath=($fdir \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'bindkey "^I" complete-word; null-line() { echo -E - $'"'"'\0'"'"' }'
zpty -w z 'compprefuncs=( null-line ); comppostfuncs=( null-line exit )'
zpty -w z 'zstyle ":completion:*" list-separator ""; zstyle ":completion:*" format ""'
zpty -w z 'compadd() { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi; typeset -a __hits; builtin compadd -A __hits "$@"; [[ -n $__hits ]] || return; local h; for h in $__hits; do echo -E - "$IPREFIX$h"; done; }'
zpty -w z 'echo ok-ready'
repeat 20; do zpty -r z line; [[ $line == ok-ready* ]] && break; done
zpty -w z "$*"$'\t'
integer tog=0
while zpty -r z; do :; done | while IFS= read -r line; do
    if [[ $line == *$'\0'* ]]; then
        (( tog++ )) && exit 0 || continue
    fi
    (( tog )) && print -r -- "${line%$'\r'}"
done
exit 0
