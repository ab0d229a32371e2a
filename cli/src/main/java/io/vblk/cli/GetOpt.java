package io.vblk.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A small getopt_long: short options from a spec like {@code "hf:t:i:rc:"} (a colon marks an
 * argument), long options from a map of name to "takes an argument", permuted operands as GNU
 * getopt does, and {@code --} to end options. qemu-img, qemu-io and each qemu-io command parse
 * their arguments this way, so vblk accepts the same spellings ({@code -c5}, {@code -c 5},
 * {@code --output=json}, {@code --output json}, {@code -rq}).
 */
public final class GetOpt {
    private final String[] args;
    private final String shortSpec;
    private final Map<String, Boolean> longOpts;
    private final String prog;
    private final List<String> operands = new ArrayList<>();
    private int index;
    private int charPos;          // position inside a cluster of short options, 0 when none
    private String optarg;

    /**
     * @param prog     name prefixed to error messages ("read"), or empty for none
     * @param longOpts long option name to whether it takes an argument
     */
    public GetOpt(String prog, String[] args, int from, String shortSpec, Map<String, Boolean> longOpts) {
        this.prog = prog;
        this.args = args;
        this.index = from;
        this.shortSpec = shortSpec;
        this.longOpts = longOpts;
    }

    /**
     * The next option: a one-character string for a short option, the long name for a long one,
     * null when options are exhausted (then {@link #operands()} holds the rest).
     */
    public String next() throws CliException {
        optarg = null;
        while (true) {
            if (charPos == 0) {
                if (index >= args.length) {
                    return null;
                }
                String a = args[index];
                if (a.equals("--")) {
                    index++;
                    while (index < args.length) {
                        operands.add(args[index++]);
                    }
                    return null;
                }
                if (a.startsWith("--")) {
                    index++;
                    return longOption(a.substring(2));
                }
                if (a.length() < 2 || a.charAt(0) != '-') {
                    operands.add(a);
                    index++;
                    continue;
                }
                charPos = 1;
            }
            String a = args[index];
            char c = a.charAt(charPos++);
            int at = c == ':' ? -1 : shortSpec.indexOf(c);
            boolean last = charPos >= a.length();
            if (at < 0) {
                if (last) {
                    charPos = 0;
                    index++;
                }
                throw CliException.usage(pfx() + "invalid option -- '" + c + "'");
            }
            boolean takesArg = at + 1 < shortSpec.length() && shortSpec.charAt(at + 1) == ':';
            if (takesArg) {
                if (!last) {
                    optarg = a.substring(charPos);
                    index++;
                } else if (index + 1 < args.length) {
                    optarg = args[index + 1];
                    index += 2;
                } else {
                    charPos = 0;
                    index++;
                    throw CliException.usage(pfx() + "option requires an argument -- '" + c + "'");
                }
                charPos = 0;
            } else if (last) {
                charPos = 0;
                index++;
            }
            return String.valueOf(c);
        }
    }

    private String longOption(String body) throws CliException {
        int eq = body.indexOf('=');
        String name = eq < 0 ? body : body.substring(0, eq);
        Boolean takesArg = longOpts.get(name);
        if (takesArg == null) {
            throw CliException.usage(pfx() + "unrecognized option '--" + name + "'");
        }
        if (takesArg) {
            if (eq >= 0) {
                optarg = body.substring(eq + 1);
            } else if (index < args.length) {
                optarg = args[index++];
            } else {
                throw CliException.usage(pfx() + "option '--" + name + "' requires an argument");
            }
        } else if (eq >= 0) {
            throw CliException.usage(pfx() + "option '--" + name + "' doesn't allow an argument");
        }
        return name;
    }

    private String pfx() {
        return prog.isEmpty() ? "" : prog + ": ";
    }

    /** The argument of the option {@link #next()} returned last. */
    public String optarg() {
        return optarg;
    }

    /** Operands (non-option arguments) in order; complete once {@link #next()} returned null. */
    public List<String> operands() {
        return operands;
    }
}
