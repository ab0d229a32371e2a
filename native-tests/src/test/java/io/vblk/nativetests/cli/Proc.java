package io.vblk.nativetests.cli;

import io.vblk.cli.Main;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs a peer (qemu-io, qemu-img, ./vblk) or vblk in-process, capturing exit code, stdout and stderr. */
record Proc(int rc, String out, String err) {
    static Proc run(List<String> cmd, Map<String, String> env) throws IOException, InterruptedException {
        Path o = Files.createTempFile("proc", ".out");
        Path e = Files.createTempFile("proc", ".err");
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(o.toFile()).redirectError(e.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            pb.environment().putAll(env);
            Process p = pb.start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("timed out: " + cmd);
            }
            return new Proc(p.exitValue(), Files.readString(o), Files.readString(e));
        } finally {
            Files.deleteIfExists(o);
            Files.deleteIfExists(e);
        }
    }

    static Proc run(String... cmd) throws IOException, InterruptedException {
        return run(List.of(cmd), Map.of());
    }

    /** vblk in this JVM (Main.run), as ./vblk would run it. */
    static Proc vblk(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int rc;
        try (PrintStream po = new PrintStream(out, true, StandardCharsets.UTF_8);
             PrintStream pe = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            rc = Main.run(args, po, pe);
        }
        return new Proc(rc, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** stdout with qemu-io's timing figures replaced by X (they differ from run to run). */
    String outWithoutTimes() {
        return out.replaceAll("(?m)^(.*, \\d+ ops; ).*$", "$1X");
    }

    /** "qemu-io: msg" / "qemu-img: msg" / "vblk: msg" with the program prefix removed, for comparing messages. */
    String errWithoutProgram() {
        return err.replaceAll("(?m)^(qemu-io|qemu-img|vblk): ", "");
    }
}
