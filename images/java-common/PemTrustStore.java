// PemTrustStore: writes a PKCS#12 trust store holding every certificate of a
// PEM bundle. The Java stand-ins' `java` (java-common/java) runs it, as a
// single-file source program, when a build mounts the host's CA bundle over
// the image's, because the JVM reads its trust from a key store, never from a
// PEM bundle.
//
// Usage: java PemTrustStore.java BUNDLE.pem STORE.p12 PASSWORD

import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;

public class PemTrustStore {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: PemTrustStore BUNDLE.pem STORE.p12 PASSWORD");
            System.exit(2);
        }
        char[] password = args[2].toCharArray();
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, password);
        try (InputStream in = new FileInputStream(args[0])) {
            int n = 0;
            for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca-" + n++, cert);
            }
        }
        try (OutputStream out = new FileOutputStream(args[1])) {
            store.store(out, password);
        }
    }
}
