import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

/**
 * What a BI tool does on connect, over PostgreSQL's JDBC driver: browse the catalogue, run a
 * prepared statement many times (pgJDBC prepares it on the server from the 5th execution and
 * then reads its results in binary), SHOW / SET, a transaction, a write (refused), and a login
 * with a wrong password (refused). Prints tab-separated lines for the test to check:
 * "table name type remarks", "column table name type remarks", "row ...", "refused what sqlstate".
 * Arguments: the JDBC URL; user and password come from C360_SQL_USER / C360_SQL_PASSWORD.
 */
public class BiCatalog {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        Properties properties = new Properties();
        properties.setProperty("user", System.getenv().getOrDefault("C360_SQL_USER", "bi"));
        String password = System.getenv("C360_SQL_PASSWORD");
        if (password != null) {
            properties.setProperty("password", password);
        }
        try (Connection connection = DriverManager.getConnection(url, properties)) {
            DatabaseMetaData meta = connection.getMetaData();
            System.out.println("product\t" + meta.getDatabaseProductName() + "\t"
                + meta.getDatabaseProductVersion());
            try (ResultSet schemas = meta.getSchemas()) {
                while (schemas.next()) {
                    System.out.println("schema\t" + schemas.getString("TABLE_SCHEM"));
                }
            }
            try (ResultSet tables = meta.getTables(null, "public", "%", null)) {
                while (tables.next()) {
                    System.out.println("table\t" + tables.getString("TABLE_NAME") + "\t"
                        + tables.getString("TABLE_TYPE") + "\t" + tables.getString("REMARKS"));
                }
            }
            try (ResultSet columns = meta.getColumns(null, "public", "customer%", "%")) {
                while (columns.next()) {
                    System.out.println("column\t" + columns.getString("TABLE_NAME") + "\t"
                        + columns.getString("COLUMN_NAME") + "\t"
                        + columns.getString("TYPE_NAME") + "\t" + columns.getString("REMARKS"));
                }
            }
            try (ResultSet keys = meta.getPrimaryKeys(null, "public", "customer_360")) {
                while (keys.next()) {
                    System.out.println("key\t" + keys.getString("COLUMN_NAME"));
                }
            }
            try (ResultSet keys = meta.getImportedKeys(null, "public", "customer_360")) {
                while (keys.next()) {
                    System.out.println("foreign_key\t" + keys.getString("FKCOLUMN_NAME"));
                }
            }
            try (ResultSet indexes = meta.getIndexInfo(null, "public", "customer_360", false,
                    true)) {
                while (indexes.next()) {
                    System.out.println("index\t" + indexes.getString("INDEX_NAME"));
                }
            }
            try (PreparedStatement query = connection.prepareStatement(
                    "select customer_id, first_name, dob, as_of, total_amount_spent,"
                    + " total_orders, age from customer_360 where customer_id = ?")) {
                for (long id = 1; id <= 8; id++) {
                    query.setLong(1, id);
                    try (ResultSet rows = query.executeQuery()) {
                        while (rows.next()) {
                            System.out.println("row\t" + rows.getLong(1) + "\t" + rows.getString(2)
                                + "\t" + rows.getDate(3) + "\t" + rows.getTimestamp(4).getTime()
                                + "\t" + rows.getBigDecimal(5).toPlainString() + "\t"
                                + rows.getLong(6) + "\t" + rows.getInt(7));
                        }
                    }
                }
            }
            // Small and large decimals, read in binary from the 5th execution on.
            try (PreparedStatement query = connection.prepareStatement(
                    "select 0.05::decimal(10,2), -0.07::decimal(10,2), 0.001::decimal(10,3),"
                    + " 1e-38::decimal(38,38), 12.05::decimal(10,2), 1e20::decimal(38,0),"
                    + " 99999999999999999999999999999999.999999::decimal(38,6),"
                    + " -0.000001::decimal(38,6), 0::decimal(10,2) where ? = 1")) {
                for (int run = 1; run <= 6; run++) {
                    query.setInt(1, 1);
                    try (ResultSet rows = query.executeQuery()) {
                        rows.next();
                        StringBuilder line = new StringBuilder("decimals");
                        for (int i = 1; i <= 9; i++) {
                            line.append('\t').append(rows.getBigDecimal(i).toPlainString());
                        }
                        System.out.println(line);
                    }
                }
            }
            try (Statement statement = connection.createStatement()) {
                statement.execute("set application_name = 'bi-catalog'");
                try (ResultSet rows = statement.executeQuery("show transaction_isolation")) {
                    rows.next();
                    System.out.println("show\t" + rows.getString(1));
                }
                // SHOW TRANSACTION ISOLATION LEVEL, as DBeaver asks on connect
                System.out.println("isolation\t" + connection.getTransactionIsolation());
                try (ResultSet rows = statement.executeQuery("select version()")) {
                    rows.next();
                    System.out.println("version\t" + rows.getString(1));
                }
                connection.setAutoCommit(false);
                try (ResultSet rows = statement.executeQuery(
                        "select count(*) from customer_purchase_stats")) {
                    rows.next();
                    System.out.println("in_transaction\t" + rows.getLong(1));
                }
                connection.commit();
                connection.setAutoCommit(true);
                for (String write : new String[] {
                        "delete from customer_360", "create table t (a int)",
                        "update customer_purchase_stats set amount_spent = 0"}) {
                    try {
                        statement.executeUpdate(write);
                        System.out.println("written\t" + write);
                    } catch (SQLException e) {
                        System.out.println("refused\t" + write + "\t" + e.getSQLState());
                    }
                }
            }
        }
        Properties wrong = new Properties();
        wrong.setProperty("user", properties.getProperty("user"));
        wrong.setProperty("password", "not-the-password");
        try (Connection connection = DriverManager.getConnection(url, wrong)) {
            System.out.println("logged_in_with_wrong_password");
        } catch (SQLException e) {
            System.out.println("refused\twrong password\t" + e.getSQLState());
        }
    }
}
