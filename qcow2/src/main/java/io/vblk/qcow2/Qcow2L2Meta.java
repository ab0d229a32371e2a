package io.vblk.qcow2;

import io.vblk.block.CoQueue;

/**
 * One in-flight cluster allocation of a write request: QEMU's QCowL2Meta. From the moment
 * handle_alloc reserves host clusters until link_l2 (or abort) it sits in the driver's in-flight
 * list; requests that touch its guest range wait on {@link #dependentRequests}.
 *
 * <p>Fields are written under the driver lock at creation and read-only afterwards, except
 * {@link #dataAddress}/{@link #dataMerged} which belong to the owning request.
 */
final class Qcow2L2Meta {
    /** Guest offset of the first allocated cluster (cluster aligned). */
    final long offset;
    /** Host offset of the first newly allocated cluster. */
    final long allocOffset;
    /** Number of clusters allocated (contiguous in guest and host). */
    final int nbClusters;
    /** COW head: bytes [cowStartOffset, cowStartOffset+cowStartBytes) relative to {@link #offset}. */
    final long cowStartOffset;
    final long cowStartBytes;
    /** COW tail, relative to {@link #offset}. */
    final long cowEndOffset;
    final long cowEndBytes;
    /** Keep the old clusters (they are not freed by link_l2); always false here, see docs/qcow2.md. */
    final boolean keepOldClusters;
    /** Every COW source reads as zeros without a read (no backing file, unallocated or zero clusters). */
    final boolean cowIsZero;
    /** Requests waiting for this allocation to be linked or aborted (dependent_requests). */
    final CoQueue dependentRequests = new CoQueue();
    /** merge_cow: the guest data lies exactly between the COW regions and is written with them. */
    boolean dataMerged;
    /** Set when handle_alloc_space zeroed the whole area: no COW needed (skip_cow). */
    boolean skipCow;

    Qcow2L2Meta(long offset, long allocOffset, int nbClusters, long cowStartBytes, long cowEndOffset, long cowEndBytes, boolean cowIsZero) {
        this.offset = offset;
        this.allocOffset = allocOffset;
        this.nbClusters = nbClusters;
        this.cowStartOffset = 0;
        this.cowStartBytes = cowStartBytes;
        this.cowEndOffset = cowEndOffset;
        this.cowEndBytes = cowEndBytes;
        this.keepOldClusters = false;
        this.cowIsZero = cowIsZero;
    }

    /** l2meta_cow_start: first guest byte of the COW span. */
    long cowStart() {
        return offset + cowStartOffset;
    }

    /** l2meta_cow_end: guest byte after the COW span. */
    long cowEnd() {
        return offset + cowEndOffset + cowEndBytes;
    }

    boolean hasCow() {
        return cowStartBytes > 0 || cowEndBytes > 0;
    }

    @Override
    public String toString() {
        return "L2Meta[guest=0x" + Long.toHexString(offset) + ", host=0x" + Long.toHexString(allocOffset) + ", n=" + nbClusters
                + ", head=" + cowStartBytes + ", tail=" + cowEndOffset + "+" + cowEndBytes + "]";
    }
}
