package io.vblk.qcow2.check;

/**
 * Counters of one consistency check (QEMU's BdrvCheckResult with its BlockFragInfo): what
 * {@code qemu-img check} prints and returns as JSON. Plain mutable fields: one checker fills them
 * on one thread.
 */
public final class CheckResult {
    /** Internal errors that stopped part of the check (I/O errors, out of memory). */
    public long checkErrors;
    /** Inconsistencies that may corrupt data. */
    public long corruptions;
    /** Clusters with a refcount above their number of references. */
    public long leaks;
    public long corruptionsFixed;
    public long leaksFixed;
    /** End of the last used cluster in the file. */
    public long imageEndOffset;
    /** Clusters of the virtual disk. */
    public long totalClusters;
    public long allocatedClusters;
    public long fragmentedClusters;
    public long compressedClusters;

    public CheckResult copy() {
        CheckResult r = new CheckResult();
        r.checkErrors = checkErrors;
        r.corruptions = corruptions;
        r.leaks = leaks;
        r.corruptionsFixed = corruptionsFixed;
        r.leaksFixed = leaksFixed;
        r.imageEndOffset = imageEndOffset;
        r.totalClusters = totalClusters;
        r.allocatedClusters = allocatedClusters;
        r.fragmentedClusters = fragmentedClusters;
        r.compressedClusters = compressedClusters;
        return r;
    }

    /** Adds the counters of another part of the check (qcow2_add_check_result). */
    public void add(CheckResult o, boolean withFragInfo) {
        checkErrors += o.checkErrors;
        corruptions += o.corruptions;
        leaks += o.leaks;
        corruptionsFixed += o.corruptionsFixed;
        leaksFixed += o.leaksFixed;
        if (o.imageEndOffset > imageEndOffset) imageEndOffset = o.imageEndOffset;
        if (withFragInfo) {
            totalClusters = o.totalClusters;
            allocatedClusters = o.allocatedClusters;
            fragmentedClusters = o.fragmentedClusters;
            compressedClusters = o.compressedClusters;
        }
    }

    /** qemu-img check's exit code for this result: 1 check errors, 2 corruptions, 3 leaks, 0 clean. */
    public int exitCode() {
        if (checkErrors != 0) return 1;
        if (corruptions != 0) return 2;
        if (leaks != 0) return 3;
        return 0;
    }

    @Override
    public String toString() {
        return "CheckResult[checkErrors=" + checkErrors + ", corruptions=" + corruptions + ", leaks=" + leaks
                + ", corruptionsFixed=" + corruptionsFixed + ", leaksFixed=" + leaksFixed
                + ", imageEndOffset=" + imageEndOffset + ", total=" + totalClusters + ", allocated=" + allocatedClusters
                + ", fragmented=" + fragmentedClusters + ", compressed=" + compressedClusters + "]";
    }
}
