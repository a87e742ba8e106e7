// pgjdbc against the Redshift stand-in (tests/integration/test_standin_redshift.py runs it):
// pgjdbc sends every statement as Parse/Bind/Describe/Execute/Sync, so this checks the
// stand-in's extended-protocol path with a second real driver. It prints one line per check;
// the Python test asserts on them. Arguments: JDBC URL, user, password, IAM role ARN.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class StandinJdbc {
    public static void main(String[] args) throws Exception {
        String role = args[3];
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            Statement s = c.createStatement();
            System.out.println("version " + c.getMetaData().getDatabaseProductVersion());
            s.execute("CREATE TABLE jt (a int, b varchar(10), c text)");
            PreparedStatement p = c.prepareStatement(
                "COPY jt FROM 's3://rsproxy-test/jin/' IAM_ROLE '" + role + "'");
            for (int i = 0; i < 3; i++) { // prepareThreshold=1: named statements after the first
                p.execute();
            }
            ResultSet r = s.executeQuery("SELECT count(*) FROM jt");
            r.next();
            System.out.println("rows " + r.getInt(1));
            s.execute("UNLOAD ('SELECT * FROM jt ORDER BY a') TO 's3://rsproxy-test/jout/' "
                      + "IAM_ROLE '" + role + "' PARALLEL OFF");
            System.out.println("unload ok");
            for (String bad : new String[] {"DISCARD ALL", "COPY jt FROM STDIN"}) {
                try {
                    s.execute(bad);
                    System.out.println("accepted " + bad);
                } catch (SQLException e) {
                    System.out.println("refused " + e.getSQLState() + " "
                                       + e.getMessage().split("\n")[0]);
                }
            }
            c.setAutoCommit(false);
            s.execute("INSERT INTO jt VALUES (99, 'x', 'y')");
            try {
                s.execute("COPY jt FROM 's3://rsproxy-test/nothing' IAM_ROLE '" + role + "'");
            } catch (SQLException e) {
                System.out.println("copy failed " + e.getMessage().split("\n")[0]);
            }
            c.rollback();
            r = s.executeQuery("SELECT count(*) FROM jt WHERE a = 99");
            r.next();
            System.out.println("after rollback " + r.getInt(1));
        }
    }
}
