package io.vblk.nativetests.bench.vhost;

import io.vblk.nativetests.vhost.QemuGuest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Guest fio through {@code vblk serve} against qemu-storage-daemon (issue 6, "Speed"): a benchmark
 * runner, not a test (nothing asserts a time). Boots the harness guest of {@link QemuGuest} (Debian
 * cloud kernel, busybox, QEMU TCG, 512 MiB, -smp 1, vhost-user-blk-pci with 1 queue) with the host's
 * fio and its libraries in the initramfs. In each boot the guest runs an unmeasured randwrite
 * and randread warm-up, then (I/O scheduler none) 4k randwrite and randread at QD32 (libaio, direct=1) on /dev/vda and prints fio's
 * terse line after a marker. Both backends serve the same image file, alternating, several rounds;
 * vblk with {@code -t none} (O_DIRECT, Linux AIO), qsd with {@code aio=native,cache.direct=on}.
 * While each fio job runs the host samples the CPU time (utime+stime of all threads, from
 * /proc/PID/stat) of the backend and of QEMU, so the report gives backend CPU per I/O too.
 *
 * <pre>
 * mvn -B -o -q -pl cli,native-tests -am package -DskipTests
 * java -cp native-tests/target/classes io.vblk.nativetests.bench.vhost.GuestFioBench \
 *     [--rounds 3] [--first-round 1] [--runtime 20] [--warmup 5] [--formats raw,qcow2] [--size 512M] [--work DIR] [--vblk ./vblk]
 *     [--qsd-iothread] [--vblk-args "ARGS"] [--vblk2-args "ARGS"] [--vblk-poll-max-ns NS] [--only vblk|vblk2|qsd] [--pin]
 *     [--iodepth 32]
 * </pre>
 * {@code --iodepth} sets fio's queue depth; the report gives fio's mean latency beside the IOPS.
 * {@code --pin} gives the guest's vCPU thread CPU 0 to itself and puts QEMU's other threads (its
 * main loop, which turns the backend's call eventfd into the guest's interrupt) and the backend on
 * CPU 1, as a host with a dedicated vCPU core would; without it the scheduler places them.
 * {@code --qsd-iothread} runs qsd's export in an {@code --object iothread} (which busy-polls with
 * poll-max-ns 32768, like {@code vblk serve} by default) instead of its main loop;
 * {@code --vblk-args} adds options to {@code vblk serve} ({@code --vblk-poll-max-ns NS} is
 * {@code --vblk-args "--poll-max-ns NS"}); {@code --vblk2-args} adds a third backend, "vblk2": a
 * second {@code vblk serve} with those options, in the same rotation, for an A/B of a setting
 * under the same conditions; {@code --only NAME} boots one backend only (for profiling it).
 */
public final class GuestFioBench {
    static final String[] WORKLOADS = {"randwrite", "randread"};

    int rounds = 3, firstRound = 1, runtime = 20, warmup = 5;
    List<String> formats = List.of("raw");
    String size = "512M";
    Path work = Path.of("/tmp/vblk-gfio");
    Path vblk = Path.of("./vblk").toAbsolutePath();
    String only;                  // null: both backends, alternating
    boolean qsdIothread;          // qsd's export runs in an --object iothread (which busy-polls) instead of the main loop
    List<String> vblkArgs = new ArrayList<>();   // extra options of vblk serve
    List<String> vblk2Args;                      // non-null: a third backend "vblk2" with these options
    boolean pin;                  // vCPU thread alone on CPU 0; QEMU's other threads and the backend on CPU 1
    int iodepth = 32;             // fio's --iodepth in the guest
    long clkTck = 100;

    /** One fio job of one boot. */
    record Sample(String format, int round, String backend, String workload, double iops, long ios, double backendCpuSec,
                  double qemuCpuSec, double wallSec, double jitCpuSec, long guestIrqs, double latUs) {
        double backendUsPerIo() { return backendCpuSec * 1e6 / ios; }
    }

    public static void main(String[] args) throws Exception {
        GuestFioBench b = new GuestFioBench();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--rounds" -> b.rounds = Integer.parseInt(args[++i]);
                case "--first-round" -> b.firstRound = Integer.parseInt(args[++i]);   // to add rounds to an earlier run
                case "--runtime" -> b.runtime = Integer.parseInt(args[++i]);
                case "--warmup" -> b.warmup = Integer.parseInt(args[++i]);
                case "--formats" -> b.formats = List.of(args[++i].split(","));
                case "--size" -> b.size = args[++i];
                case "--work" -> b.work = Path.of(args[++i]);
                case "--vblk" -> b.vblk = Path.of(args[++i]).toAbsolutePath();
                case "--qsd-iothread" -> b.qsdIothread = true;
                case "--only" -> b.only = args[++i];
                case "--pin" -> b.pin = true;
                case "--iodepth" -> b.iodepth = Integer.parseInt(args[++i]);
                case "--vblk-poll-max-ns" -> b.vblkArgs.addAll(List.of("--poll-max-ns", args[++i]));
                case "--vblk-args" -> b.vblkArgs.addAll(words(args[++i]));
                case "--vblk2-args" -> b.vblk2Args = words(args[++i]);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        if ("vblk2".equals(b.only) && b.vblk2Args == null) throw new IllegalArgumentException("--only vblk2 needs --vblk2-args");
        System.exit(b.run() ? 0 : 1);
    }

    static String guestScript() {
        return QemuGuest.initPreamble() + """
                export PATH=/bin:/usr/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
                [ -b /dev/vda ] || { echo "GFIO-ERROR no /dev/vda"; poweroff -f; }
                echo none > /sys/block/vda/queue/scheduler
                RT=$(sed -n 's/.*gfio_runtime=\\([0-9]*\\).*/\\1/p' /proc/cmdline)
                WU=$(sed -n 's/.*gfio_warmup=\\([0-9]*\\).*/\\1/p' /proc/cmdline)
                QD=$(sed -n 's/.*gfio_iodepth=\\([0-9]*\\).*/\\1/p' /proc/cmdline)
                echo "GFIO-INFO cache_type=$(cat /sys/block/vda/cache_type) scheduler=$(cat /sys/block/vda/queue/scheduler) size=$(cat /sys/block/vda/size)"
                F="--filename=/dev/vda --ioengine=libaio --direct=1 --bs=4k --iodepth=$QD --numjobs=1 --time_based --group_reporting --output-format=terse --terse-version=3"
                for w in randwrite randread; do
                  out=$(fio --name=warmup-$w $F --rw=$w --runtime=$WU 2>&1) || echo "GFIO-ERROR warmup: $out"
                done
                for w in randwrite randread; do
                  echo "GFIO-IRQ0 $w $(grep virtio /proc/interrupts | tr -s ' ' | tr '\n' ';')"
                  echo "GFIO-BEGIN $w"
                  out=$(fio --name=$w $F --rw=$w --runtime=$RT 2>&1)
                  echo "GFIO-END $w"
                  echo "GFIO-IRQ1 $w $(grep virtio /proc/interrupts | tr -s ' ' | tr '\n' ';')"
                  t=$(echo "$out" | grep '^3;')
                  if [ -n "$t" ]; then echo "GFIO-TERSE $w $t"; else echo "GFIO-ERROR $w: $out"; fi
                done
                echo "GFIO-DONE"
                poweroff -f
                """;
    }

    boolean run() throws Exception {
        for (String b : new String[] {"qemu-system-x86_64", "qemu-storage-daemon", "qemu-img", "fio", "ldd"}) {
            if (!QemuGuest.have(b)) throw new IOException(b + " is not installed");
        }
        if (!Files.isExecutable(vblk)) throw new IOException(vblk + " is not executable (the vblk launcher)");
        clkTck = Long.parseLong(QemuGuest.run(List.of("getconf", "CLK_TCK"), 10).trim());
        Files.createDirectories(work);
        Path[] k = QemuGuest.kernel();
        Path initrd = QemuGuest.initramfs(Files.createTempDirectory(work, "initramfs"), k[1], guestScript(), List.of(Path.of("/usr/bin/fio")));
        System.out.printf("initramfs %s (%d MiB), kernel %s%n", initrd, Files.size(initrd) >> 20, k[0]);
        List<Sample> samples = new ArrayList<>();
        boolean ok = true;
        for (String fmt : formats) {
            Path image = work.resolve("disk." + fmt);
            Files.deleteIfExists(image);
            QemuGuest.run(List.of("qemu-img", "create", "-q", "-f", fmt, "-o", "preallocation=full", image.toString(), size), 300);
            for (int r = firstRound; r < firstRound + rounds; r++) {
                List<String> order = backends(r);
                for (String backend : order) {
                    try {
                        List<Sample> got = boot(k[0], initrd, image, fmt, r, backend);
                        for (Sample s : got) {
                            System.out.printf(Locale.ROOT, "%s round %d %-5s %-9s %8.0f IOPS  lat %7.1f us  backend %6.1f us CPU/IO (JIT %.2f s)  qemu %.1f s CPU over %.1f s  guest irqs/IO %.3f%n",
                                    fmt, r, backend, s.workload, s.iops, s.latUs, s.backendUsPerIo(), s.jitCpuSec, s.qemuCpuSec, s.wallSec,
                                    s.guestIrqs < 0 ? Double.NaN : s.guestIrqs / (double) s.ios);
                        }
                        samples.addAll(got);
                    } catch (IOException e) {
                        ok = false;
                        System.out.println(fmt + " round " + r + " " + backend + ": FAILED: " + e.getMessage());
                    }
                }
            }
            if (fmt.equals("qcow2")) QemuGuest.run(List.of("qemu-img", "check", "-f", fmt, image.toString()), 120);
            Files.deleteIfExists(image);
        }
        System.out.println();
        System.out.print(table(samples));
        return ok;
    }

    List<Sample> boot(Path kernel, Path initrd, Path image, String fmt, int round, String backend) throws Exception {
        Path dir = Files.createTempDirectory(work, fmt + "-r" + round + "-" + backend + "-");
        Path socket = dir.resolve("vhost.sock"), blog = dir.resolve("backend.log"), console = dir.resolve("console.log");
        List<String> cmd;
        if (backend.startsWith("vblk")) {
            cmd = new ArrayList<>(List.of(vblk.toString(), "serve", "-f", fmt, "-t", "none", "--socket", socket.toString(), "--num-queues", "1"));
            cmd.addAll(backend.equals("vblk2") ? vblk2Args : vblkArgs);
            cmd.add(image.toString());
        } else {
            cmd = qsd(image, fmt, socket, qsdIothread);
        }
        if (pin) cmd.addAll(0, List.of("taskset", "-c", "1"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(blog.toFile());
        pb.environment().put("VBLK_NO_REBUILD", "1");
        Process b = pb.start();
        Process q = null;
        List<Sample> out = new ArrayList<>();
        try {
            QemuGuest.waitForSocket(socket, b, 60);
            q = QemuGuest.start(kernel, initrd, socket, 1, console, "gfio_runtime=" + runtime + " gfio_warmup=" + warmup + " gfio_iodepth=" + iodepth,
                    false, pin ? List.of("taskset", "-c", "1") : List.of());
            if (pin) pinVcpu(q.pid());
            Map<String, long[]> begin = new LinkedHashMap<>(), end = new LinkedHashMap<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(75L + 2L * warmup + 2L * runtime);
            int seen = 0;
            while (q.isAlive() && System.nanoTime() < deadline) {
                String now = Files.readString(console, java.nio.charset.StandardCharsets.ISO_8859_1);
                List<String> lines = now.substring(0, now.lastIndexOf('\n') + 1).lines().toList();   // complete lines only
                for (; seen < lines.size(); seen++) {
                    String l = lines.get(seen).trim();
                    if (l.startsWith("GFIO-BEGIN ")) begin.put(l.substring(11), new long[] {cpuTicks(b.pid()), cpuTicks(q.pid()), System.nanoTime(), jitTicks(b.pid())});
                    if (l.startsWith("GFIO-END ")) end.put(l.substring(9), new long[] {cpuTicks(b.pid()), cpuTicks(q.pid()), System.nanoTime(), jitTicks(b.pid())});
                }
                Thread.sleep(20);
            }
            String text = QemuGuest.finish(q, 5, console);
            Map<String, Long> irqs = new LinkedHashMap<>();   // "0 randread" / "1 randread" -> the guest's virtio request interrupts
            for (String l : text.lines().toList()) {
                if (l.startsWith("GFIO-INFO")) System.out.println(fmt + " round " + round + " " + backend + ": " + l);
                if (l.startsWith("GFIO-ERROR")) throw new IOException(l);
                if (l.startsWith("GFIO-IRQ")) {
                    String[] p = l.split(" ", 3);
                    irqs.put(p[0].substring(8) + " " + p[1], requestIrqs(p.length > 2 ? p[2] : ""));
                    continue;
                }
                if (!l.startsWith("GFIO-TERSE ")) continue;
                String[] p = l.split(" ", 3);
                String w = p[1];
                String[] f = p[2].trim().split(";");
                boolean read = w.equals("randread");
                long kb = Long.parseLong(f[read ? 5 : 46]);
                double iops = Double.parseDouble(f[read ? 7 : 48]);
                double latUs = Double.parseDouble(f[read ? 39 : 80]);   // terse v3: total latency mean, µs
                long[] s = begin.get(w), e = end.get(w);
                if (s == null || e == null) throw new IOException("no CPU samples around " + w);
                out.add(new Sample(fmt, round, backend, w, iops, kb / 4, (e[0] - s[0]) / (double) clkTck, (e[1] - s[1]) / (double) clkTck,
                        (e[2] - s[2]) / 1e9, (e[3] - s[3]) / (double) clkTck, irqs.getOrDefault("1 " + w, -1L) - irqs.getOrDefault("0 " + w, 0L), latUs));
            }
            if (!text.contains("GFIO-DONE") || out.size() != WORKLOADS.length) {
                List<String> lines = text.lines().filter(l -> l.startsWith("GFIO")).toList();
                throw new IOException("guest stalled: no GFIO-DONE within " + (75 + 2 * warmup + 2 * runtime) + " s, last marker '"
                        + (lines.isEmpty() ? "" : lines.getLast()) + "', backend " + (b.isAlive() ? "alive, " + cpuTicks(b.pid()) / clkTck
                        + " s CPU" : "exited " + b.exitValue()) + "; console " + console + ", backend log " + blog);
            }
        } finally {
            if (q != null && q.isAlive()) q.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            b.destroy();   // SIGTERM: both backends flush and exit
            if (!b.waitFor(30, TimeUnit.SECONDS)) b.destroyForcibly();
            if (backend.startsWith("vblk") && Files.exists(blog)) {   // its request, pass and interrupt counts
                Files.readAllLines(blog).stream().filter(l -> l.contains("shutting down"))
                        .forEach(l -> System.out.println(fmt + " round " + round + " " + backend + ": " + l));
            }
        }
        return out;
    }

    /** Moves QEMU's vCPU thread ("CPU 0/TCG", named by debug-threads=on) alone onto CPU 0. */
    static void pinVcpu(long pid) throws IOException, InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < end) {
            try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
                for (Path t : tasks.toList()) {
                    String comm;
                    try {
                        comm = Files.readString(t.resolve("comm")).trim();
                    } catch (IOException gone) {
                        continue;
                    }
                    if (comm.startsWith("CPU 0/")) {
                        QemuGuest.run(List.of("taskset", "-p", "-c", "0", t.getFileName().toString()), 10);
                        return;
                    }
                }
            }
            Thread.sleep(20);
        }
        throw new IOException("no vCPU thread in QEMU process " + pid + " to pin");
    }

    static List<String> words(String s) {
        return s.isBlank() ? List.of() : List.of(s.trim().split("\\s+"));
    }

    /** The boot order of round {@code r}: the backends rotate so that none always goes first. */
    List<String> backends(int r) {
        if (only != null) return List.of(only);
        List<String> all = new ArrayList<>(List.of("vblk", "qsd"));
        if (vblk2Args != null) all.add(1, "vblk2");
        Collections.rotate(all, -((r - 1) % all.size()));
        return all;
    }

    static List<String> qsd(Path image, String fmt, Path socket, boolean iothread) {
        List<String> cmd = new ArrayList<>(List.of("qemu-storage-daemon",
                "--blockdev", "driver=file,node-name=file,filename=" + image + ",aio=native,cache.direct=on"));
        if (iothread) cmd.addAll(List.of("--object", "iothread,id=iot0"));
        String node = "file";
        if (fmt.equals("qcow2")) {
            cmd.addAll(List.of("--blockdev", "driver=qcow2,node-name=disk,file=file"));
            node = "disk";
        }
        cmd.addAll(List.of("--export", "type=vhost-user-blk,id=exp,node-name=" + node + ",addr.type=unix,addr.path=" + socket
                + ",writable=on,num-queues=1" + (iothread ? ",iothread=iot0" : "")));
        return cmd;
    }

    /**
     * utime + stime of the process's JIT compiler threads ("C1 CompilerThre", "C2 CompilerThre"), in
     * clock ticks: how much of a JVM backend's CPU during a job went to compiling rather than I/O.
     */
    static long jitTicks(long pid) {
        long sum = 0;
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path t : tasks.toList()) {
                try {
                    String s = Files.readString(t.resolve("stat"));
                    String comm = s.substring(s.indexOf('(') + 1, s.lastIndexOf(')'));
                    if (!comm.contains("CompilerThre")) continue;
                    String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
                    sum += Long.parseLong(f[11]) + Long.parseLong(f[12]);
                } catch (IOException | RuntimeException gone) {
                    // the thread ended between the listing and the read
                }
            }
        } catch (IOException e) {
            return 0;
        }
        return sum;
    }

    /**
     * The guest's virtio request-queue interrupt count from its {@code /proc/interrupts} lines
     * ("N: COUNT PCI-MSI ... virtio0-req.0", joined by ';'): the sum over the lines naming a
     * request queue, or over all virtio lines when none does.
     */
    static long requestIrqs(String lines) {
        long req = 0, all = 0;
        boolean any = false;
        for (String l : lines.split(";")) {
            String[] f = l.trim().split(" ");
            if (f.length < 3 || !f[1].matches("[0-9]+")) continue;
            long n = Long.parseLong(f[1]);
            all += n;
            if (l.contains("req")) {
                req += n;
                any = true;
            }
        }
        return any ? req : all;
    }

    /** utime + stime of the whole process (all threads), in clock ticks. */
    static long cpuTicks(long pid) throws IOException {
        String s = Files.readString(Path.of("/proc/" + pid + "/stat"));
        String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");   // f[0] is field 3 (state)
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);          // fields 14, 15
    }

    static double median(List<Double> v) {
        List<Double> s = v.stream().sorted(Comparator.naturalOrder()).toList();
        int n = s.size();
        return n == 0 ? Double.NaN : n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    String table(List<Sample> samples) {
        return vblk2Args == null ? table(samples, "vblk") : table(samples, "vblk") + "\n" + table(samples, "vblk2");
    }

    /** vblk (or vblk2) against qsd, round by round. */
    String table(List<Sample> samples, String name) {
        StringBuilder t = new StringBuilder();
        t.append("| image | workload | round | vblk IOPS | qsd IOPS | vblk/qsd | vblk CPU µs/IO | qsd CPU µs/IO |\n".replace("vblk", name));
        t.append("|---|---|---|---:|---:|---:|---:|---:|\n");
        for (String fmt : formats) {
            for (String w : WORKLOADS) {
                List<Double> vi = new ArrayList<>(), qi = new ArrayList<>(), vc = new ArrayList<>(), qc = new ArrayList<>(), ratio = new ArrayList<>();
                for (int r = firstRound; r < firstRound + rounds; r++) {
                    Sample v = find(samples, fmt, r, name, w), q = find(samples, fmt, r, "qsd", w);
                    if (v == null || q == null) continue;
                    vi.add(v.iops); qi.add(q.iops); vc.add(v.backendUsPerIo()); qc.add(q.backendUsPerIo()); ratio.add(v.iops / q.iops);
                    t.append(String.format(Locale.ROOT, "| %s | %s | %d | %.0f | %.0f | %.2f | %.1f | %.1f |%n", fmt, w, r, v.iops, q.iops,
                            v.iops / q.iops, v.backendUsPerIo(), q.backendUsPerIo()));
                }
                t.append(String.format(Locale.ROOT, "| %s | %s | **median** | **%.0f** | **%.0f** | **%.2f** | **%.1f** | **%.1f** |%n", fmt, w,
                        median(vi), median(qi), median(vi) / median(qi), median(vc), median(qc)));
            }
        }
        return t.toString();
    }

    static Sample find(List<Sample> all, String fmt, int round, String backend, String w) {
        return all.stream().filter(s -> s.format.equals(fmt) && s.round == round && s.backend.equals(backend) && s.workload.equals(w))
                .findFirst().orElse(null);
    }
}
