package io.vblk.cli;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import java.io.InputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

/**
 * The {@code vblk} command: dispatches to a subcommand (qemu-img's main plus qemu-io's), prints
 * {@code --help} and {@code --version}, and turns errors into one line on stderr and exit code 1,
 * as qemu-img does (commands with their own codes, like {@code check}, return them). Subcommands
 * built by other modules ({@code demo}, {@code serve}, {@code create}, {@code info}, {@code check},
 * {@code map}) are found by class name, each a class with
 * {@code public static int run(String[] args, PrintStream out, PrintStream err)} (void is taken as 0).
 */
public final class Main {
    /** A subcommand: its class, whether it is part of this module, and its one-line summary. */
    record Command(String className, String summary) {}

    static final Map<String, Command> COMMANDS = new LinkedHashMap<>();

    static {
        COMMANDS.put("demo", new Command("io.vblk.cli.DemoCommand", "run the main job: a verified workload through virtio-blk, qcow2 and Linux AIO"));
        COMMANDS.put("create", new Command("io.vblk.cli.img.CreateCommand", "create a raw or qcow2 image (qemu-img create)"));
        COMMANDS.put("info", new Command("io.vblk.cli.img.InfoCommand", "show image information (qemu-img info)"));
        COMMANDS.put("check", new Command("io.vblk.cli.img.CheckCommand", "check and repair a qcow2 image (qemu-img check)"));
        COMMANDS.put("map", new Command("io.vblk.cli.img.MapCommand", "show the allocation map (qemu-img map)"));
        COMMANDS.put("io", new Command("io.vblk.cli.IoCommand", "run qemu-io commands on an image (qemu-io)"));
        COMMANDS.put("bench", new Command("io.vblk.cli.BenchCommand", "simple I/O benchmark (qemu-img bench)"));
        COMMANDS.put("serve", new Command("io.vblk.cli.ServeCommand", "vhost-user-blk backend (qemu-storage-daemon)"));
    }

    private Main() {}

    public static void main(String[] args) {
        int rc = run(args, System.out, System.err);
        System.out.flush();
        System.err.flush();
        System.exit(rc);
    }

    /** Runs {@code vblk ARGS}; returns the exit code. */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0) {
            err.println("vblk: Not enough arguments");
            err.println("Try 'vblk --help' for more information");
            return 1;
        }
        String name = args[0];
        switch (name) {
            case "-h", "--help", "help" -> {
                if (args.length > 1 && !name.startsWith("-")) {
                    return run(new String[] {args[1], "--help"}, out, err);
                }
                out.print(usage());
                return 0;
            }
            case "-V", "--version", "version" -> {
                out.println("vblk version " + version());
                out.println("Java " + Runtime.version() + ", coroutines: " + AioContext.coroutineBackend());
                return 0;
            }
            default -> { }
        }
        Command c = COMMANDS.get(name);
        if (c == null) {
            err.println("vblk: Command not found: " + name);
            err.println("Try 'vblk --help' for more information");
            return 1;
        }
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        try {
            return invoke(name, c, rest, out, err);
        } catch (CliException e) {
            err.println("vblk: " + e.getMessage());
            if (e.showTryHelp()) {
                err.println("Try 'vblk " + name + " --help' for more information");
            }
            return e.exitCode();
        } catch (BlockException e) {
            err.println("vblk: " + e.getMessage());
            return 1;
        } catch (RuntimeException | Error e) {
            err.println("vblk: internal error: " + e);
            if (System.getenv("VBLK_DEBUG") != null) {
                e.printStackTrace(err);
            } else {
                err.println("(set VBLK_DEBUG=1 for the stack trace)");
            }
            return 1;
        } finally {
            out.flush();
            err.flush();
        }
    }

    static int invoke(String name, Command c, String[] args, PrintStream out, PrintStream err) throws CliException, BlockException {
        Method m = find(name, c);
        try {
            Object r = m.invoke(null, args, out, err);
            return r instanceof Integer i ? i : 0;
        } catch (InvocationTargetException e) {
            Throwable t = e.getCause();
            if (t instanceof CliException ce) throw ce;
            if (t instanceof BlockException be) throw be;
            if (t instanceof RuntimeException re) throw re;
            if (t instanceof Error er) throw er;
            throw new CliException(t.getClass().getSimpleName() + ": " + t.getMessage());
        } catch (IllegalAccessException e) {
            throw new CliException("'" + name + "' is not usable: " + e.getMessage());
        }
    }

    /** The subcommand's static run method, or a CliException saying it is not built in. */
    static Method find(String name, Command c) throws CliException {
        Class<?> k;
        try {
            k = Class.forName(c.className());
        } catch (ClassNotFoundException | LinkageError e) {
            throw new CliException("'" + name + "' is not built in (" + c.className() + " is missing from this build)");
        }
        try {
            Method m = k.getMethod("run", String[].class, PrintStream.class, PrintStream.class);
            if (!Modifier.isStatic(m.getModifiers())) {
                throw new CliException("'" + name + "' is not built in (" + c.className() + ".run is not static)");
            }
            return m;
        } catch (NoSuchMethodException e) {
            throw new CliException("'" + name + "' is not built in (" + c.className() + " has no run(String[], PrintStream, PrintStream))");
        }
    }

    static boolean builtIn(Command c) {
        try {
            Class.forName(c.className());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    static String usage() {
        StringBuilder sb = new StringBuilder();
        sb.append("vblk version ").append(version()).append('\n');
        sb.append("usage: vblk [--help | --version] COMMAND [command options]\n");
        sb.append("virtio-blk device emulator for the JVM: block layer, qcow2, Linux AIO\n\n");
        sb.append("Commands:\n");
        for (Map.Entry<String, Command> e : COMMANDS.entrySet()) {
            sb.append(String.format("  %-7s %s%s%n", e.getKey(), e.getValue().summary(), builtIn(e.getValue()) ? "" : " [not built in]"));
        }
        sb.append("\n'vblk COMMAND --help' describes a command's options. Sizes take k, M, G, T suffixes.\n");
        sb.append("'-f null SIZE' (or '-f memory SIZE') opens a null (or RAM) device of SIZE instead of a file.\n");
        sb.append("Exit status: 0 on success, 1 on error (check: 0 clean, 1 check failed, 2 corruptions, 3 leaks).\n");
        return sb.toString();
    }

    static String version() {
        try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String v = p.getProperty("version");
                if (v != null && !v.startsWith("$")) return v;
            }
        } catch (java.io.IOException ignored) {
            // fall through
        }
        return "unknown";
    }
}
