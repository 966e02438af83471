# bash completion for lsan: the candidates come from lsan itself
# (urfave/cli's --generate-bash-completion), so they follow its flags.
_lsan() {
	local cur opts
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
		opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
	return 0
}
complete -o bashdefault -o default -F _lsan lsan
