# bash completion for enclosure(1). Installed as share/bash-completion/completions/enclosure;
# to try it from a checkout: source scripts/enclosure-completion.bash
_enclosure() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion -n = || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="run check explain diff doctor export learn collect daemon audit ps stop init"
    if ((cword == 1)); then
        COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
        return
    fi

    local command=${words[1]} i
    # After `--` (run, learn): the agent's command and its arguments.
    for ((i = 2; i < cword; i++)); do
        if [[ ${words[i]} == -- ]]; then
            if ((i + 1 == cword)); then
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
        fi
    done

    local options="-h --help"
    case $command in
        run)
            options+=" -m --manifest --daemon --context --context-file --events --audit-required"
            options+=" --collector-buffer --grace --ring-buffer --dns-upstream --dns-grace"
            options+=" --event-rate --event-burst --tty --no-tty --"
            ;;
        check) options+=" --context --context-file -q --quiet" ;;
        ps) options+=" --json" ;;
        init) options+=" -o --output --force coding data browsing" ;;
        stop) options+=" --timeout" ;;
        explain) options+=" --context --context-file --json" ;;
        diff) options+=" --fail-on-widen --context --context-file --json" ;;
        doctor) options+=" -m --manifest --context --daemon --json" ;;
        export) options+=" --format -o --output --context --context-file" ;;
        learn) options+=" -o --output -m --manifest --headroom --profile --timeout --dns-upstream --" ;;
        collect)
            options+=" --listen --audit-log --metrics --metrics-allow-remote --socket-mode --socket-group"
            options+=" --rotate-size --keep --keep-size --metrics-max-connections --fsync --events"
            options+=" --sign-key --sign-interval --next-key"
            ;;
        daemon)
            options+=" --socket --pin-dir --state-dir --cgroup --allow-group --max-runs-per-user"
            options+=" --adopt-timeout --ring-buffer --event-rate --event-burst"
            ;;
        audit)
            if ((cword == 2)); then
                COMPREPLY=($(compgen -W "verify show --help" -- "$cur"))
                return
            fi
            case ${words[2]} in
                verify) options+=" --require-closed --all --json --key" ;;
                show) options+=" --run --type --since --json --format" ;;
            esac
            ;;
        *) return ;;
    esac

    case $prev in
        -m | --manifest | --context-file | -o | --output | --profile | --audit-log | --daemon | \
            --socket)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --pin-dir | --state-dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            return
            ;;
        --allow-group)
            COMPREPLY=($(compgen -g -- "$cur"))
            return
            ;;
        --format)
            COMPREPLY=($(compgen -W "oci-seccomp" -- "$cur"))
            return
            ;;
        --events)
            COMPREPLY=($(compgen -W "- unix:" -- "$cur") $(compgen -f -- "$cur"))
            return
            ;;
        --listen)
            COMPREPLY=($(compgen -W "unix:" -- "$cur"))
            return
            ;;
        --fsync)
            COMPREPLY=($(compgen -W "durable interval" -- "$cur"))
            return
            ;;
        --type)
            COMPREPLY=($(compgen -W "start exec tool_call open open_count connect dns deny budget rule anomaly cost lost suppressed exit" -- "$cur"))
            return
            ;;
        --context | --grace | --ring-buffer | --collector-buffer | --headroom | --timeout | \
            --dns-upstream | --dns-grace | --metrics | --socket-mode | --rotate-size | --run | \
            --since | --cgroup | --max-runs-per-user | --adopt-timeout | --event-rate | \
            --event-burst | --keep | --keep-size | --metrics-max-connections | --sign-interval)
            return
            ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -o filenames -o bashdefault -F _enclosure enclosure
