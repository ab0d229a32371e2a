package io.vblk.nativetests.aio;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the system tools the aio native tests need (mount, losetup, chattr) and reports success and output. */
final class Sys {
    private Sys() {}

    record Result(int exit, String out) {
        boolean ok() {
            return exit == 0;
        }
    }

    static Result run(String... cmd) {
        try {
            Process p = new ProcessBuilder(List.of(cmd)).redirectErrorStream(true).start();
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return new Result(-1, "timeout");
            }
            return new Result(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim());
        } catch (IOException e) {
            return new Result(-1, e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Result(-1, e.toString());
        }
    }

    static boolean isRoot() {
        return "root".equals(System.getProperty("user.name"));
    }

    /** Mounts a {@code type} file system on {@code dir} (root only); true on success. */
    static boolean mount(String type, String options, Path dir) {
        return isRoot() && run("mount", "-t", type, "-o", options, type, dir.toString()).ok();
    }

    static void umount(Path dir) {
        run("umount", "-l", dir.toString());
    }
}
