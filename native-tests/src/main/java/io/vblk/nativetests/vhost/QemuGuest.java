package io.vblk.nativetests.vhost;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The QEMU guest harness of research/e2e-with-a-qemu-guest.md section 8: fetches the Debian cloud
 * kernel (apt-get download + dpkg -x into a reused cache dir), builds a busybox initramfs whose
 * /init runs checks T1..T7 on /dev/vda, boots qemu-system-x86_64 under TCG with
 * vhost-user-blk-pci on a backend socket with a wall-clock timeout, and builds the expected image
 * with qemu-io for qemu-img compare. It lives in main sources so that the guest benchmark
 * ({@code io.vblk.nativetests.bench.vhost.GuestFioBench}) boots the same guest as the tests.
 */
public final class QemuGuest {
    private QemuGuest() {}

    public static final Path CACHE = Path.of(System.getProperty("vblk.e2e.cache", "/tmp/vblk-e2e-cache"));
    static final long DISK = 128L << 20;
    /** Reconnect mode: the host writes 512 bytes of 'S' here to end the guest's repeated T4 (100 MiB, untouched by T1-T7). */
    static final long STOP_SECTOR = (100L << 20) / 512;
    static final String[] MODULES = {"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk"};

    /** What the guest writes: offset, length of pattern.bin's first bytes. Replayed with qemu-io for the expected image. */
    static final long[][] WRITES = {
            {7L << 20, 1 << 20},            // T1
            {16L << 20, 1 << 20},           // T2 (256 x 4k)
            {12345L * 512, 512},            // T3 sector 12345
            {DISK - 4096, 4096},            // T3 last 4k
            {32L << 20, 1 << 20}, {33L << 20, 1 << 20}, {34L << 20, 1 << 20}, {35L << 20, 1 << 20},   // T4 concurrent
            {40L << 20, 4096},              // T6 write + fsync after switching to write back
    };

    public static String run(List<String> cmd, int timeoutSec) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(timeoutSec, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("timeout: " + cmd);
        }
        String s = new String(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) throw new IOException(String.join(" ", cmd) + " exited " + p.exitValue() + ": " + s);
        return s;
    }

    public static boolean have(String bin) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (Files.isExecutable(Path.of(d, bin))) return true;
        }
        return false;
    }

    /** The kernel image and its module dir, downloaded once into {@link #CACHE}. */
    public static Path[] kernel() throws IOException, InterruptedException {
        Files.createDirectories(CACHE);
        Path root = CACHE.resolve("root");
        try (var s = Files.exists(root.resolve("boot")) ? Files.list(root.resolve("boot")) : java.util.stream.Stream.<Path>empty()) {
            Path vmlinuz = s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-")).findFirst().orElse(null);
            if (vmlinuz != null) return new Path[] {vmlinuz, modulesDir(root, vmlinuz)};
        }
        String deps = run(List.of("apt-cache", "depends", "linux-image-cloud-amd64"), 60);
        String pkg = deps.lines().map(String::trim).filter(l -> l.matches("Depends: linux-image-[0-9].*")).map(l -> l.substring(9).trim())
                .findFirst().orElseThrow(() -> new IOException("no linux-image-*-cloud-amd64 in apt: " + deps));
        run(List.of("sh", "-c", "cd " + CACHE + " && apt-get download " + pkg), 300);
        run(List.of("sh", "-c", "cd " + CACHE + " && dpkg -x " + pkg + "_*.deb root"), 120);
        return kernel();
    }

    private static Path modulesDir(Path root, Path vmlinuz) {
        String ver = vmlinuz.getFileName().toString().substring("vmlinuz-".length());
        return root.resolve("lib/modules").resolve(ver).resolve("kernel");
    }

    static byte[] pattern() {
        byte[] b = new byte[1 << 20];
        new Random(0x5eed).nextBytes(b);
        return b;
    }

    /** Builds the uncompressed initramfs in {@code dir}; returns its path. */
    static Path initramfs(Path dir, Path modules) throws IOException, InterruptedException {
        return initramfs(dir, modules, initScript(), List.of());
    }

    /**
     * Builds an uncompressed initramfs in {@code dir} with busybox, the virtio modules, pattern.bin,
     * the given /init script and each of {@code binaries} at its host path together with every
     * shared library {@code ldd} lists for it (how the guest gets fio: there is no static fio).
     */
    public static Path initramfs(Path dir, Path modules, String initScript, List<Path> binaries) throws IOException, InterruptedException {
        Path root = dir.resolve("initramfs");
        Files.createDirectories(root.resolve("bin"));
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.copy(Path.of("/bin/busybox"), root.resolve("bin/busybox"));
        for (String m : MODULES) {
            Path src = m.equals("virtio_blk") ? modules.resolve("drivers/block/virtio_blk.ko") : modules.resolve("drivers/virtio/" + m + ".ko");
            Files.copy(src, root.resolve(m + ".ko"));
        }
        Files.write(root.resolve("pattern.bin"), pattern());
        Path init = root.resolve("init");
        for (Path bin : binaries) copyWithLibraries(root, bin);
        Files.writeString(init, initScript);
        Files.setPosixFilePermissions(init, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path cpio = dir.resolve("initramfs.cpio");
        run(List.of("sh", "-c", "cd " + root + " && find . | /bin/busybox cpio -o -H newc > " + cpio), 60);
        return cpio;
    }

    /** Copies {@code binary} and the libraries {@code ldd} resolves for it to the same paths under {@code root}. */
    static void copyWithLibraries(Path root, Path binary) throws IOException, InterruptedException {
        List<Path> files = new ArrayList<>(List.of(binary));
        for (String line : run(List.of("ldd", binary.toString()), 30).lines().toList()) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("(?:=>\\s*)?(/\\S+)\\s+\\(0x").matcher(line);
            if (m.find()) files.add(Path.of(m.group(1)));
        }
        for (Path f : files) {
            Path dst = root.resolve(f.toString().substring(1));
            Files.createDirectories(dst.getParent());
            if (!Files.exists(dst)) Files.copy(f, dst);   // follows symlinks: the guest gets the file itself
            Files.setPosixFilePermissions(dst, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
    }

    /** The /init preamble: busybox applets, proc/sys/devtmpfs, console, virtio modules, wait for /dev/vda. */
    public static String initPreamble() {
        return """
                #!/bin/busybox sh
                /bin/busybox --install -s /bin
                export PATH=/bin
                mkdir -p /proc /sys /dev /tmp
                mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
                exec </dev/console >/dev/console 2>&1
                for m in %s; do insmod /$m.ko || echo "insmod $m failed"; done
                i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
                """.formatted(String.join(" ", MODULES));
    }

    static String initScript() {
        long lastBlock = DISK / 4096 - 1;
        return initPreamble() + """
                FAIL=""
                fail() { echo "E2E-CHECK FAIL: $1"; FAIL="$FAIL $1"; }
                P=$(md5sum /pattern.bin | cut -d' ' -f1)
                [ -b /dev/vda ] || { echo "E2E-RESULT: FAIL no /dev/vda"; poweroff -f; }
                echo "E2E features: $(cat /sys/block/vda/device/features) cache: $(cat /sys/block/vda/cache_type)"
                # T1: 1 MiB O_DIRECT at 7 MiB
                dd if=/pattern.bin of=/dev/vda bs=1M seek=7 oflag=direct 2>/dev/null || fail T1-write
                [ "$(dd if=/dev/vda bs=1M skip=7 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = "$P" ] || fail T1-read
                # T2: 256 x 4 KiB at 16 MiB
                dd if=/pattern.bin of=/dev/vda bs=4k count=256 seek=4096 oflag=direct 2>/dev/null || fail T2-write
                [ "$(dd if=/dev/vda bs=1M skip=16 count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = "$P" ] || fail T2-read
                # T3: 512 B at sector 12345, the last 4 KiB, and past the end (must fail)
                dd if=/pattern.bin of=/dev/vda bs=512 count=1 seek=12345 oflag=direct 2>/dev/null || fail T3-sector
                [ "$(dd if=/dev/vda bs=512 skip=12345 count=1 iflag=direct 2>/dev/null | md5sum)" = "$(dd if=/pattern.bin bs=512 count=1 2>/dev/null | md5sum)" ] || fail T3-sector-read
                dd if=/pattern.bin of=/dev/vda bs=4k count=1 seek=%d oflag=direct 2>/dev/null || fail T3-last
                [ "$(dd if=/dev/vda bs=4k skip=%d count=1 iflag=direct 2>/dev/null | md5sum)" = "$(dd if=/pattern.bin bs=4k count=1 2>/dev/null | md5sum)" ] || fail T3-last-read
                if dd if=/pattern.bin of=/dev/vda bs=4k count=1 seek=%d oflag=direct 2>/dev/null; then fail T3-past-end; fi
                # T4: 4 concurrent writers of 1 MiB (4k O_DIRECT writes). In reconnect mode the round repeats (each region
                # written by 4 writers at once, the same bytes, so the order does not matter) while the host kills the
                # backend, until the host writes the stop mark (512 bytes of 'S' at sector %4$d) or 40 rounds have run
                R=1; W="0 1 2 3"; grep -q vblk_reconnect /proc/cmdline && R=40 && W="0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3" && echo "E2E-T4-BEGIN"
                for r in $(seq $R); do
                for k in $W; do dd if=/pattern.bin of=/dev/vda bs=4k count=256 seek=$((8192 + k * 256)) oflag=direct 2>/dev/null || echo "E2E-CHECK FAIL: T4-write-$k" & done
                wait
                [ $R -gt 1 ] && [ "$(dd if=/dev/vda bs=512 skip=%4$d count=1 iflag=direct 2>/dev/null | head -c 4)" = "SSSS" ] && break
                done
                [ $R -gt 1 ] && echo "E2E-T4-END"
                for k in 32 33 34 35; do [ "$(dd if=/dev/vda bs=1M skip=$k count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = "$P" ] || fail T4-$k; done
                # T5: 64 MiB sequential read
                dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null || fail T5
                # T6: switch the cache to write back through CONFIG_WCE, then write + flush
                [ "$(cat /sys/block/vda/cache_type)" = "write back" ] || echo "write back" > /sys/block/vda/cache_type
                [ "$(cat /sys/block/vda/cache_type)" = "write back" ] || fail T6-wce
                dd if=/pattern.bin of=/dev/vda bs=4k count=1 seek=10240 oflag=direct conv=fsync 2>/dev/null || fail T6-flush
                # T7: discard 8 MiB at 64 MiB (never written)
                blkdiscard -o 67108864 -l 8388608 /dev/vda || fail T7
                sync
                dmesg | grep -i -E 'blk_update_request|I/O error|virtio' | grep -i -E 'error|not a head' && fail dmesg-io-error
                if [ -z "$FAIL" ]; then echo "E2E-RESULT: PASS"; else echo "E2E-RESULT: FAIL$FAIL"; fi
                poweroff -f
                """.formatted(lastBlock, lastBlock, lastBlock + 1, STOP_SECTOR);
    }

    /** Writes what the guest will write into {@code image} with qemu-io. */
    static void expectedImage(Path image, String fmt, Path pattern) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", fmt));
        for (long[] w : WRITES) {
            cmd.add("-c");
            cmd.add("write -q -s " + pattern + " " + w[0] + " " + w[1]);
        }
        cmd.add(image.toString());
        run(cmd, 60);
    }

    /** Boots the guest on the vhost-user socket; returns the console output. */
    static String boot(Path kernel, Path initrd, Path socket, int queues, int timeoutSec, Path consoleLog) throws IOException, InterruptedException {
        Process p = start(kernel, initrd, socket, queues, consoleLog, false);
        return finish(p, timeoutSec, consoleLog);
    }

    /** Starts QEMU; with {@code reconnect} the chardev reconnects after the backend goes away and the guest repeats T4. */
    static Process start(Path kernel, Path initrd, Path socket, int queues, Path consoleLog, boolean reconnect) throws IOException {
        return start(kernel, initrd, socket, queues, consoleLog, reconnect ? "vblk_reconnect" : "", reconnect);
    }

    /** Starts QEMU (TCG, 512 MiB memfd guest RAM, -smp = queues) with {@code extraAppend} on the kernel command line. */
    public static Process start(Path kernel, Path initrd, Path socket, int queues, Path consoleLog, String extraAppend, boolean reconnect)
            throws IOException {
        return start(kernel, initrd, socket, queues, consoleLog, extraAppend, reconnect, List.of());
    }

    /** As above, with {@code prefix} before the QEMU command (such as {@code taskset -c 1}) and QEMU's threads named. */
    public static Process start(Path kernel, Path initrd, Path socket, int queues, Path consoleLog, String extraAppend, boolean reconnect,
                                List<String> prefix) throws IOException {
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(List.of("qemu-system-x86_64", "-name", "guest,debug-threads=on", "-accel", "tcg", "-m", "512", "-smp", String.valueOf(queues), "-nographic",
                "-no-reboot", "-nodefaults", "-serial", "stdio", "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                "-append", "console=ttyS0 panic=-1 quiet" + (extraAppend.isEmpty() ? "" : " " + extraAppend),
                "-object", "memory-backend-memfd,id=mem,size=512M,share=on", "-machine", "memory-backend=mem",
                "-chardev", "socket,id=vub,path=" + socket + (reconnect ? ",reconnect=1" : ""),
                "-device", "vhost-user-blk-pci,chardev=vub,num-queues=" + queues));
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(consoleLog.toFile()).start();
    }

    public static String finish(Process p, int timeoutSec, Path consoleLog) throws IOException, InterruptedException {
        boolean done = p.waitFor(timeoutSec, TimeUnit.SECONDS);
        if (!done) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        String out = Files.readString(consoleLog);
        return done ? out : out + "\n[harness: guest timed out after " + timeoutSec + " s]";
    }

    public static void waitForSocket(Path socket, Process backend, int timeoutSec) throws IOException, InterruptedException {
        long end = System.nanoTime() + timeoutSec * 1_000_000_000L;
        while (!Files.exists(socket)) {
            if (!backend.isAlive()) throw new IOException("backend exited " + backend.exitValue() + " before creating " + socket);
            if (System.nanoTime() > end) throw new IOException("backend did not create " + socket + " in " + timeoutSec + " s");
            Thread.sleep(50);
        }
    }
}
