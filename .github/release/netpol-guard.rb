# Homebrew formula template for a tap (`brew install netpol-guard/tap/netpol-guard`).
# VERSION and the SHA256 values are filled from the release archives by fill.sh.
class NetpolGuard < Formula
  desc "Keeps Kubernetes NetworkPolicy from breaking clusters: checks and connectivity"
  homepage "https://github.com/netpol-guard/netpol-guard"
  version "VERSION"
  license "Apache-2.0"

  on_macos do
    on_arm do
      url "https://github.com/netpol-guard/netpol-guard/releases/download/vVERSION/netpol-guard-VERSION-aarch64-apple-darwin.tar.gz"
      sha256 "SHA256_aarch64-apple-darwin"
    end
    on_intel do
      url "https://github.com/netpol-guard/netpol-guard/releases/download/vVERSION/netpol-guard-VERSION-x86_64-apple-darwin.tar.gz"
      sha256 "SHA256_x86_64-apple-darwin"
    end
  end

  on_linux do
    on_arm do
      url "https://github.com/netpol-guard/netpol-guard/releases/download/vVERSION/netpol-guard-VERSION-aarch64-unknown-linux-musl.tar.gz"
      sha256 "SHA256_aarch64-unknown-linux-musl"
    end
    on_intel do
      url "https://github.com/netpol-guard/netpol-guard/releases/download/vVERSION/netpol-guard-VERSION-x86_64-unknown-linux-musl.tar.gz"
      sha256 "SHA256_x86_64-unknown-linux-musl"
    end
  end

  def install
    bin.install "netpol-guard"
    generate_completions_from_executable(bin/"netpol-guard", "completions")
    (man1/"netpol-guard.1").write Utils.safe_popen_read(bin/"netpol-guard", "man")
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/netpol-guard --version")
  end
end
