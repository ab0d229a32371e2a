package io.vblk.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/** Runs {@code vblk ARGS} in-process and captures its exit code, stdout and stderr. */
record CliRun(int rc, String out, String err) {
    static CliRun of(String... args) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        int rc;
        try (PrintStream po = new PrintStream(o, true, StandardCharsets.UTF_8);
             PrintStream pe = new PrintStream(e, true, StandardCharsets.UTF_8)) {
            rc = Main.run(args, po, pe);
        }
        return new CliRun(rc, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }

    /** stdout with the timing figures of qemu-io's statistics lines replaced by X. */
    String outWithoutTimes() {
        return out.replaceAll("(?m)^(.*, \\d+ ops; ).*$", "$1X");
    }
}
