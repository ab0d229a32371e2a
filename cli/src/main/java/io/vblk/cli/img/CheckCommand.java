package io.vblk.cli.img;

import io.vblk.block.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.cli.img.ImgSupport.Args;
import io.vblk.cli.img.ImgSupport.UsageException;
import io.vblk.qcow2.Qcow2Header;
import io.vblk.qcow2.check.CheckFile;
import io.vblk.qcow2.check.CheckResult;
import io.vblk.qcow2.check.Qcow2Check;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * {@code vblk check [-f fmt] [--output=human|json] [-r leaks|all] [-q] FILE}: qemu-img check
 * (img_check, collect_image_check, dump_human_image_check). Exit codes: 0 consistent (or
 * repaired), 1 check not completed, 2 corruptions, 3 leaks only, 63 format without check (raw).
 * The checker's per-cluster messages go to {@code err}, the summary to {@code out}.
 */
public final class CheckCommand {
    private CheckCommand() {}

    static final String USAGE = "usage: vblk check [-f fmt] [--output=human|json] [-r leaks|all] [-q] FILE";

    public static int run(String[] args, PrintStream out, PrintStream err) {
        Args a;
        boolean json;
        int fix = 0;
        try {
            a = ImgSupport.parse(args, "fr", "qhU", Set.of("output", "image-opts", "object", "cache"), Set.of("help", "force-share"));
            if (a.has("-h") || a.has("--help")) {
                out.println(USAGE);
                return 0;
            }
            json = ImgSupport.jsonOutput(a);
            String r = a.get("-r");
            if (r != null) {
                fix = switch (r) {
                    case "leaks" -> Qcow2Check.FIX_LEAKS;
                    case "all" -> Qcow2Check.FIX_LEAKS | Qcow2Check.FIX_ERRORS;
                    default -> throw new UsageException("Unknown option value for -r (expecting 'leaks' or 'all'): " + r);
                };
            }
            if (a.positional.size() != 1) throw new UsageException("Expecting one image file name");
        } catch (UsageException e) {
            err.println("vblk: " + e.getMessage());
            err.println(USAGE);
            return 1;
        }
        boolean quiet = a.has("-q");
        String filename = a.positional.get(0);
        String fmt = a.get("-f");
        try {
            if (fmt == null) fmt = ImgSupport.probe(Path.of(filename));
        } catch (IOException e) {
            err.println("vblk: Could not open '" + filename + "': " + ioMessage(e));
            return 1;
        }
        if (!fmt.equals("qcow2") && !fmt.equals("raw")) {
            err.println("vblk: Unknown file format '" + fmt + "'");
            return 1;
        }
        if (!Files.exists(Path.of(filename))) {
            err.println("vblk: Could not open '" + filename + "': Could not open '" + filename + "': No such file or directory");
            return 1;
        }
        if (fmt.equals("raw")) {
            err.println("vblk: This image format does not support checks");
            return 63;
        }
        AioContext ctx = ImgSupport.startContext();
        BlockNode node = null;
        try {
            node = ImgSupport.openFile(filename, fix != 0);
            BlockNode n = node;
            final int fixMode = fix;
            int[] rc = {0};
            CheckResult[] res = new CheckResult[2];
            String[] openError = {null};
            ctx.run(() -> {
                CheckFile f = CheckFile.of(n);
                try {
                    Qcow2Header h;
                    try {
                        h = Qcow2Check.readHeader(f);
                    } catch (BlockException e) {
                        openError[0] = e.getMessage();
                        return 0;
                    }
                    res[0] = Qcow2Check.check(f, h, fixMode, err);
                    if (res[0].corruptionsFixed != 0 || res[0].leaksFixed != 0) {
                        res[1] = Qcow2Check.check(f, h, 0, err);
                    }
                    return 0;
                } finally {
                    f.close();
                }
            });
            if (openError[0] != null) {
                err.println("vblk: Could not open '" + filename + "': " + openError[0]);
                return 1;
            }
            CheckResult r = res[0];
            if (res[1] != null) {
                if (!json && !quiet) {
                    out.printf("The following inconsistencies were found and repaired:%n%n"
                            + "    %d leaked clusters%n    %d corruptions%n%nDouble checking the fixed image now...%n",
                            r.leaksFixed, r.corruptionsFixed);
                }
                CheckResult again = res[1];
                again.leaksFixed = r.leaksFixed;
                again.corruptionsFixed = r.corruptionsFixed;
                r = again;
            }
            if (!quiet) {
                if (json) {
                    out.println(QemuJson.pretty(toJson(r, filename)));
                } else {
                    printHuman(r, out);
                }
            }
            if (r.checkErrors != 0) {
                err.println("vblk: Check failed");
                return 1;
            }
            return r.exitCode();
        } catch (BlockException e) {
            err.println("vblk: Could not open '" + filename + "': " + e.getMessage());
            return 1;
        } finally {
            ImgSupport.close(ctx, node);
            ctx.close();
        }
    }

    private static String ioMessage(IOException e) {
        if (e instanceof java.nio.file.NoSuchFileException) return "No such file or directory";
        if (e instanceof java.nio.file.AccessDeniedException) return "Permission denied";
        return e.getMessage();
    }

    /** dump_human_image_check. */
    static void printHuman(CheckResult c, PrintStream out) {
        if (c.corruptions == 0 && c.leaks == 0 && c.checkErrors == 0) {
            out.println("No errors were found on the image.");
        } else {
            if (c.corruptions != 0) {
                out.printf("%n%d errors were found on the image.%nData may be corrupted, or further writes to the image may corrupt it.%n", c.corruptions);
            }
            if (c.leaks != 0) {
                out.printf("%n%d leaked clusters were found on the image.%nThis means waste of disk space, but no harm to data.%n", c.leaks);
            }
            if (c.checkErrors != 0) {
                out.printf("%n%d internal errors have occurred during the check.%n", c.checkErrors);
            }
        }
        if (c.totalClusters != 0 && c.allocatedClusters != 0) {
            out.printf(Locale.ROOT, "%d/%d = %s%% allocated, %s%% fragmented, %s%% compressed clusters%n",
                    c.allocatedClusters, c.totalClusters,
                    percent(c.allocatedClusters * 100.0 / c.totalClusters),
                    percent(c.fragmentedClusters * 100.0 / c.allocatedClusters),
                    percent(c.compressedClusters * 100.0 / c.allocatedClusters));
        }
        if (c.imageEndOffset != 0) {
            out.printf("Image end offset: %d%n", c.imageEndOffset);
        }
    }

    /**
     * C's "%0.2f": rounds the exact binary value half-to-even (glibc), so 3.125 prints 3.12 where
     * Java's formatter would print 3.13.
     */
    static String percent(double v) {
        return new java.math.BigDecimal(v).setScale(2, java.math.RoundingMode.HALF_EVEN).toPlainString();
    }

    /** ImageCheck as qemu-img's JSON (optional members only when non-zero). */
    static Map<String, Object> toJson(CheckResult c, String filename) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("filename", filename);
        m.put("format", "qcow2");
        m.put("check-errors", c.checkErrors);
        if (c.imageEndOffset != 0) m.put("image-end-offset", c.imageEndOffset);
        if (c.corruptions != 0) m.put("corruptions", c.corruptions);
        if (c.leaks != 0) m.put("leaks", c.leaks);
        if (c.corruptionsFixed != 0) m.put("corruptions-fixed", c.corruptionsFixed);
        if (c.leaksFixed != 0) m.put("leaks-fixed", c.leaksFixed);
        if (c.totalClusters != 0) m.put("total-clusters", c.totalClusters);
        if (c.allocatedClusters != 0) m.put("allocated-clusters", c.allocatedClusters);
        if (c.fragmentedClusters != 0) m.put("fragmented-clusters", c.fragmentedClusters);
        if (c.compressedClusters != 0) m.put("compressed-clusters", c.compressedClusters);
        return m;
    }
}
