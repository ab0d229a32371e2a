package io.vblk.virtio.memory;

/**
 * One contiguous range of guest-physical memory backed by host memory: vm-memory's GuestRegionMmap.
 * {@code userAddr} is the front-end's virtual address of the same range (vhost-user's
 * VhostUserMemoryRegion.userspace_addr), or -1 for in-process guests.
 *
 * @param gpa      first guest-physical address
 * @param size     bytes
 * @param host     host virtual address of byte {@code gpa}
 * @param userAddr front-end virtual address of byte {@code gpa}, or -1
 */
public record GuestRegion(long gpa, long size, long host, long userAddr) {
    public GuestRegion {
        if (size <= 0) throw new IllegalArgumentException("region size must be positive: " + size);
        if (gpa < 0 || gpa + size < gpa) throw new IllegalArgumentException("region wraps: gpa " + gpa + " size " + size);
    }

    /** True if [addr, addr+len) lies in this region's guest-physical range (len >= 0). */
    public boolean containsGpa(long addr, long len) {
        return addr >= gpa && len >= 0 && addr - gpa <= size && size - (addr - gpa) >= len;
    }

    /** True if [addr, addr+len) lies in this region's front-end virtual range. */
    public boolean containsUser(long addr, long len) {
        return userAddr != -1 && Long.compareUnsigned(addr, userAddr) >= 0 && len >= 0
                && Long.compareUnsigned(addr - userAddr, size) <= 0 && size - (addr - userAddr) >= len;
    }
}
