# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_lpexec_global_optspecs
    string join \n r/role= u/user= reason= n/non-interactive l/list h/help V/version
end

function __fish_lpexec_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_lpexec_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_lpexec_using_subcommand
    set -l cmd (__fish_lpexec_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c lpexec -n "__fish_lpexec_needs_command" -s r -l role -d 'Act in ROLE only: the rules of your other roles do not apply' -r
complete -c lpexec -n "__fish_lpexec_needs_command" -s u -l user -d 'Run the command as USER (a name or #UID) instead of the role\'s default target' -r
complete -c lpexec -n "__fish_lpexec_needs_command" -l reason -d 'Why you are running this; logged, and shown to approvers' -r
complete -c lpexec -n "__fish_lpexec_needs_command" -s n -l non-interactive -d 'Never prompt or start a login; fail instead (the default when stdin is not a terminal)'
complete -c lpexec -n "__fish_lpexec_needs_command" -s l -l list -d 'List the roles and rules that apply to you (same as `lpexec list`)'
complete -c lpexec -n "__fish_lpexec_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c lpexec -n "__fish_lpexec_needs_command" -s V -l version -d 'Print version'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "list" -d 'List the roles and rules that apply to you'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "explain" -d 'Show the decision for a command and the rule (file:line) that makes it, without running it'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "login" -d 'Log in to an identity provider with the device flow and cache the tokens'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "logout" -d 'Forget cached tokens'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "whoami" -d 'Show your Unix identity and every cached OIDC identity'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "requests" -d 'List pending approval requests you may act on'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "approve" -d 'Approve a request'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "deny" -d 'Deny a request'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "sessions" -d 'List recorded sessions'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "replay" -d 'Replay a recorded session in the terminal'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "verify" -d 'Check a recording\'s seal: sealed and valid, tampered, or unsealed'
complete -c lpexec -n "__fish_lpexec_needs_command" -a "check" -d 'Check configuration and policy files, and run policy tests'
complete -c lpexec -n "__fish_lpexec_using_subcommand list" -s r -l role -d 'Only this role' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand list" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand explain" -s r -l role -d 'Decide for ROLE only' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand explain" -s u -l user -d 'Decide for running as USER' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand explain" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand login" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand logout" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand whoami" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand requests" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand approve" -l comment -d 'A comment recorded with your approval' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand approve" -s y -l yes -d 'Do not ask for confirmation'
complete -c lpexec -n "__fish_lpexec_using_subcommand approve" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand deny" -l comment -d 'A comment recorded with your denial' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand deny" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand sessions" -l user -d 'Only sessions of this Unix caller' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand sessions" -l command -d 'Only sessions whose command line matches REGEX' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand sessions" -l since -d 'Only sessions that started at or after WHEN (2026-12-03, "2026-12-03 19:05", or an age such as 2h)' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand sessions" -l until -d 'Only sessions that started before WHEN' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand sessions" -l json -d 'One JSON object per line instead of a table'
complete -c lpexec -n "__fish_lpexec_using_subcommand sessions" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand replay" -l speed -d 'Playback speed factor' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand replay" -l idle-limit -d 'Cap pauses at SECS seconds' -r
complete -c lpexec -n "__fish_lpexec_using_subcommand replay" -l print -d 'Print the output at once instead of replaying it in real time'
complete -c lpexec -n "__fish_lpexec_using_subcommand replay" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand verify" -s h -l help -d 'Print help'
complete -c lpexec -n "__fish_lpexec_using_subcommand check" -l config -d 'Check this main configuration file instead of the installed one' -r -F
complete -c lpexec -n "__fish_lpexec_using_subcommand check" -l policy -d 'Check this policy file instead of the installed policy.toml and policy.d/' -r -F
complete -c lpexec -n "__fish_lpexec_using_subcommand check" -l test -d 'Run the policy tests in FILE against the policy being checked' -r -F
complete -c lpexec -n "__fish_lpexec_using_subcommand check" -s h -l help -d 'Print help'
